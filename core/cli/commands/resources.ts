import type { CommandContext } from '../main';
import { parse, parseBytes } from '../args';
import { forEachName as each, table } from '../render';
import { STATS_HEADERS, STATS_TABLE, type StatsRow, statsContext } from '../formatters';
import { Format } from '../template';
import { humanSize } from '../../util/format';

export async function pause({ client, argv, out }: CommandContext): Promise<number> {
  const { positionals } = parse(argv, {}, 'berth pause CONTAINER [CONTAINER...]', { min: 1 });
  return each(positionals, out, (c) => client.request(`/containers/${encodeURIComponent(c)}/pause`, { method: 'POST' }));
}

export async function unpause({ client, argv, out }: CommandContext): Promise<number> {
  const { positionals } = parse(argv, {}, 'berth unpause CONTAINER [CONTAINER...]', { min: 1 });
  return each(positionals, out, (c) => client.request(`/containers/${encodeURIComponent(c)}/unpause`, { method: 'POST' }));
}

export async function top({ client, argv, out }: CommandContext): Promise<void> {
  const { positionals } = parse(argv, {}, 'berth top CONTAINER [ps OPTIONS]', { min: 1 });
  const [container, ...psArgs] = positionals;
  const r = await client.json(`/containers/${encodeURIComponent(container)}/top`, { query: { ps_args: psArgs.join(' ') || undefined } });
  out.write(table(r.Titles, r.Processes));
}

/** Docker's CPU %: the container's share of all CPU time between two samples, times the CPU count. */
export function cpuPercent(s: any): number {
  const cpuDelta = (s.cpu_stats?.cpu_usage?.total_usage ?? 0) - (s.precpu_stats?.cpu_usage?.total_usage ?? 0);
  const sysDelta = (s.cpu_stats?.system_cpu_usage ?? 0) - (s.precpu_stats?.system_cpu_usage ?? 0);
  return sysDelta > 0 && cpuDelta > 0 ? (cpuDelta / sysDelta) * (s.cpu_stats?.online_cpus ?? 1) * 100 : 0;
}

function statsRow(s: any): StatsRow {
  const mem = s.memory_stats ?? {};
  const cache = mem.stats?.inactive_file ?? mem.stats?.total_inactive_file ?? mem.stats?.cache ?? 0;
  const usage = Math.max(0, (mem.usage ?? 0) - cache);
  const limit = mem.limit ?? 0;
  const blk = (s.blkio_stats?.io_service_bytes_recursive ?? []) as { op: string; value: number }[];
  const sum = (op: string) => blk.filter((b) => b.op.toLowerCase() === op).reduce((a, b) => a + b.value, 0);
  const net = Object.values((s.networks ?? {}) as Record<string, { rx_bytes: number; tx_bytes: number }>);
  return {
    container: s.requested ?? s.id,
    id: s.id,
    name: String(s.name).replace(/^\//, ''),
    cpu: `${cpuPercent(s).toFixed(2)}%`,
    mem: `${humanSize(usage)} / ${limit ? humanSize(limit) : '--'}`,
    memPerc: limit ? `${((usage / limit) * 100).toFixed(2)}%` : '--',
    net: `${humanSize(net.reduce((a, n) => a + n.rx_bytes, 0))} / ${humanSize(net.reduce((a, n) => a + n.tx_bytes, 0))}`,
    block: `${humanSize(sum('read'))} / ${humanSize(sum('write'))}`,
    pids: String(s.pids_stats?.current ?? 0),
  };
}

export async function stats({ client, argv, out }: CommandContext): Promise<void> {
  const { values, positionals } = parse(
    argv,
    {
      all: { type: 'boolean', short: 'a', help: 'Show all containers (default shows just running)' },
      format: { type: 'string', help: 'Pretty-print stats using a Go template' },
      'no-stream': { type: 'boolean', help: 'Disable streaming stats and only pull the first result' },
      'no-trunc': { type: 'boolean', help: 'Do not truncate output' },
    },
    'berth stats [OPTIONS] [CONTAINER...]',
  );
  const template = new Format(!values.format || values.format === 'table' ? STATS_TABLE : values.format);
  const names = positionals.length ? positionals : (await client.json<any[]>('/containers/json', { query: { all: values.all } })).map((c) => c.Id);
  const sampleAll = () => Promise.all(names.map(async (n) => ({ ...(await client.json(`/containers/${encodeURIComponent(n)}/stats`, { query: { stream: 0 } })), requested: n })));
  const render = async () =>
    template.render(
      (await sampleAll()).map((s) => statsContext(statsRow(s), !values['no-trunc'])),
      STATS_HEADERS,
    );
  if (values['no-stream']) {
    out.write(await render());
    return;
  }
  for (;;) {
    const text = await render();
    if (out.isTTY) out.write('\x1b[2J\x1b[H');
    out.write(text);
    await new Promise((r) => setTimeout(r, 750));
  }
}

export async function update({ client, argv, out }: CommandContext): Promise<number> {
  const { values, positionals } = parse(
    argv,
    {
      'blkio-weight': { type: 'string', help: 'Block IO (relative weight), between 10 and 1000, or 0 to disable' },
      'cpu-period': { type: 'string', help: 'Limit CPU CFS (Completely Fair Scheduler) period' },
      'cpu-quota': { type: 'string', help: 'Limit CPU CFS (Completely Fair Scheduler) quota' },
      'cpu-shares': { type: 'string', short: 'c', help: 'CPU shares (relative weight)' },
      cpus: { type: 'string', help: 'Number of CPUs' },
      'cpuset-cpus': { type: 'string', help: 'CPUs in which to allow execution (0-3, 0,1)' },
      memory: { type: 'string', short: 'm', help: 'Memory limit' },
      'memory-reservation': { type: 'string', help: 'Memory soft limit' },
      'memory-swap': { type: 'string', help: "Swap limit equal to memory plus swap: '-1' to enable unlimited swap" },
      'pids-limit': { type: 'string', help: 'Tune container pids limit (set -1 for unlimited)' },
      restart: { type: 'string', help: 'Restart policy to apply when a container exits' },
    },
    'berth update [OPTIONS] CONTAINER [CONTAINER...]',
    { min: 1 },
  );
  const body: Record<string, unknown> = {};
  if (values.memory) body.Memory = parseBytes(values.memory);
  if (values['memory-swap']) body.MemorySwap = values['memory-swap'] === '-1' ? -1 : parseBytes(values['memory-swap']);
  if (values['memory-reservation']) body.MemoryReservation = parseBytes(values['memory-reservation']);
  if (values.cpus) body.NanoCpus = Math.round(Number(values.cpus) * 1e9);
  if (values['cpu-shares']) body.CpuShares = Number(values['cpu-shares']);
  if (values['cpu-quota']) body.CpuQuota = Number(values['cpu-quota']);
  if (values['cpu-period']) body.CpuPeriod = Number(values['cpu-period']);
  if (values['cpuset-cpus']) body.CpusetCpus = values['cpuset-cpus'];
  if (values['pids-limit']) body.PidsLimit = Number(values['pids-limit']);
  if (values['blkio-weight']) body.BlkioWeight = Number(values['blkio-weight']);
  if (values.restart) {
    const [Name, max] = values.restart.split(':');
    body.RestartPolicy = { Name, MaximumRetryCount: Number(max ?? 0) };
  }
  return each(positionals, out, (c) => client.json(`/containers/${encodeURIComponent(c)}/update`, { method: 'POST', body }));
}
