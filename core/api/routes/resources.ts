/** Pause/unpause, top, stats and update, in the Docker Engine API's shapes. */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { promisify } from 'node:util';
import type { Engine } from '../../kernel/engine';
import { interfaceCounters } from '../../networks/host';
import { type Router, boolParam, readJsonBody, sendJson } from '../router';
import { UPDATE_BODY, checkBody } from '../validate';

const run = promisify(execFile);

/** Total CPU time of the host in nanoseconds, as Docker's system_cpu_usage. */
function systemCpuUsage(): number {
  const line = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0];
  const ticks = line
    .split(/\s+/)
    .slice(1, 8)
    .reduce((a, b) => a + Number(b), 0);
  return (ticks / 100) * 1e9; // USER_HZ is 100 on Linux
}

export function resourceRoutes(router: Router, engine: Engine): void {
  const containers = engine.containers;

  router.add('POST', '/containers/{id}/pause', async (req, res) => {
    await containers.pause(req.params.id);
    res.writeHead(204).end();
  });

  router.add('POST', '/containers/{id}/unpause', async (req, res) => {
    await containers.unpause(req.params.id);
    res.writeHead(204).end();
  });

  router.add('POST', '/containers/{id}/update', async (req, res) => {
    const body = checkBody<Record<string, unknown>>(await readJsonBody(req), UPDATE_BODY, 'update config') ?? {};
    sendJson(res, 200, { Warnings: await containers.update(req.params.id, body) });
  });

  // `ps` on the host, filtered to the container's pids (what dockerd does too).
  router.add('GET', '/containers/{id}/top', async (req, res) => {
    const pids = new Set((await containers.pids(req.params.id)).map(String));
    const args = (req.query.get('ps_args') || '-ef').split(/\s+/).filter(Boolean);
    const { stdout } = await run('ps', args, { maxBuffer: 16 * 1024 * 1024 });
    const lines = stdout.trimEnd().split('\n');
    const titles = lines[0].trim().split(/\s+/);
    const pidCol = titles.indexOf('PID');
    const processes = lines.slice(1).map((l) => {
      const cols = l.trim().split(/\s+/);
      return [...cols.slice(0, titles.length - 1), cols.slice(titles.length - 1).join(' ')];
    });
    sendJson(res, 200, { Titles: titles, Processes: pidCol < 0 ? processes : processes.filter((p) => pids.has(p[pidCol])) });
  });

  router.add('GET', '/containers/{id}/stats', async (req, res) => {
    const rec = containers.get(req.params.id);
    const stream = req.query.get('stream') === null || boolParam(req.query, 'stream');
    const oneShot = boolParam(req.query, 'one-shot');
    const sample = async () => {
      const pid = containers.get(rec.Id).State.Pid;
      return { raw: await containers.rawStats(rec.Id), networks: pid ? await interfaceCounters(pid) : {}, system: systemCpuUsage(), read: new Date().toISOString() };
    };
    const shape = (cur: Awaited<ReturnType<typeof sample>>, prev?: Awaited<ReturnType<typeof sample>>) => {
      const cpu = (s?: typeof cur) => ({ ...((s?.raw.cpu_stats as object) ?? { cpu_usage: { total_usage: 0 } }), system_cpu_usage: s?.system ?? 0, online_cpus: os.cpus().length });
      return {
        read: cur.read,
        preread: prev?.read ?? '0001-01-01T00:00:00Z',
        id: rec.Id,
        name: rec.Name,
        num_procs: 0,
        pids_stats: cur.raw.pids_stats ?? {},
        blkio_stats: cur.raw.blkio_stats ?? {},
        storage_stats: {},
        cpu_stats: cpu(cur),
        precpu_stats: prev ? cpu(prev) : { cpu_usage: { total_usage: 0 }, system_cpu_usage: 0, online_cpus: os.cpus().length },
        memory_stats: cur.raw.memory_stats ?? {},
        networks: cur.networks,
      };
    };
    let prev = oneShot ? undefined : await sample();
    if (!stream) {
      if (prev) await new Promise((r) => setTimeout(r, 250));
      sendJson(res, 200, shape(await sample(), prev));
      return;
    }
    res.writeHead(200, { 'Content-Type': 'application/json' });
    while (!req.signal.aborted && containers.list().some((c) => c.Id === rec.Id)) {
      await new Promise((r) => setTimeout(r, 1000));
      const cur = await sample();
      res.write(JSON.stringify(shape(cur, prev)) + '\n');
      prev = cur;
      if (!containers.get(rec.Id).State.Running) break;
    }
    res.end();
  });
}
