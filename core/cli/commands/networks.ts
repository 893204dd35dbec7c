/** `berth network ...` and `berth port`, plus the parsing of `run -p`. */
import type { CommandContext } from '../main';
import { parse } from '../args';
import { forEachName, printInspected } from '../render';
import { NETWORK_HEADERS, NETWORK_TABLE, networkContext } from '../formatters';
import { Format } from '../template';

export async function port({ client, argv, out }: CommandContext): Promise<number> {
  const { positionals } = parse(argv, {}, 'berth port CONTAINER [PRIVATE_PORT[/PROTO]]', { min: 1, max: 2 });
  const info = await client.json(`/containers/${encodeURIComponent(positionals[0])}/json`);
  const ports = (info.NetworkSettings?.Ports ?? {}) as Record<string, { HostIp: string; HostPort: string }[] | null>;
  if (positionals[1]) {
    const key = positionals[1].includes('/') ? positionals[1] : `${positionals[1]}/tcp`;
    const list = ports[key];
    if (!list?.length) {
      process.stderr.write(`Error: No public port '${key}' published for ${positionals[0]}\n`);
      return 1;
    }
    out.write(list.map((b) => `${b.HostIp}:${b.HostPort}\n`).join(''));
    return 0;
  }
  for (const [key, list] of Object.entries(ports)) for (const b of list ?? []) out.write(`${key} -> ${b.HostIp}:${b.HostPort}\n`);
  return 0;
}

export async function networkCreate({ client, argv, out }: CommandContext): Promise<void> {
  const { values, positionals } = parse(
    argv,
    {
      subnet: { type: 'string', help: 'Subnet in CIDR format that represents a network segment' },
      gateway: { type: 'string', help: 'IPv4 or IPv6 Gateway for the master subnet' },
      driver: { type: 'string', short: 'd', help: 'Driver to manage the Network' },
      label: { type: 'string', multiple: true, help: 'Set metadata on a network' },
    },
    'berth network create [--subnet CIDR] [--gateway IP] NAME',
    { min: 1, max: 1 },
  );
  const labels = Object.fromEntries((values.label ?? []).map((l) => [l.split('=')[0], l.split('=').slice(1).join('=')]));
  const body = {
    Name: positionals[0],
    Driver: values.driver ?? 'bridge',
    IPAM: values.subnet || values.gateway ? { Driver: 'default', Config: [{ Subnet: values.subnet, Gateway: values.gateway }] } : undefined,
    Labels: labels,
  };
  const res = await client.json('/networks/create', { method: 'POST', body });
  out.write(`${res.Id}\n`);
}

export async function networkLs({ client, argv, out }: CommandContext): Promise<void> {
  const { values } = parse(
    argv,
    {
      filter: { type: 'string', short: 'f', multiple: true, help: "Provide filter values (e.g. 'driver=bridge')" },
      format: { type: 'string', help: 'Pretty-print networks using a Go template' },
      'no-trunc': { type: 'boolean', help: 'Do not truncate the output' },
      quiet: { type: 'boolean', short: 'q', help: 'Only display network IDs' },
    },
    'berth network ls [OPTIONS]',
    { max: 0 },
  );
  const filters: Record<string, string[]> = {};
  for (const f of values.filter ?? []) (filters[f.split('=')[0]] ??= []).push(f.split('=').slice(1).join('='));
  const list = await client.json<any[]>('/networks', { query: { filters: Object.keys(filters).length ? JSON.stringify(filters) : undefined } });
  let format = values.format ?? 'table';
  if (format === 'table') format = values.quiet ? '{{.ID}}' : NETWORK_TABLE;
  out.write(
    new Format(format).render(
      list.map((n) => networkContext(n, !values['no-trunc'])),
      NETWORK_HEADERS,
    ),
  );
}

export async function networkInspect({ client, argv, out }: CommandContext): Promise<number> {
  const { values, positionals } = parse(
    argv,
    { format: { type: 'string', short: 'f', help: 'Format the output using the given Go template' } },
    'berth network inspect [OPTIONS] NETWORK [NETWORK...]',
    { min: 1 },
  );
  const found: unknown[] = [];
  let code = 0;
  for (const n of positionals) {
    try {
      found.push(await client.json(`/networks/${encodeURIComponent(n)}`));
    } catch (e) {
      process.stderr.write(`Error response from daemon: ${(e as Error).message}\n`);
      code = 1;
    }
  }
  out.write(printInspected(found, values.format));
  return code;
}

export async function networkRm({ client, argv, out }: CommandContext): Promise<number> {
  const { positionals } = parse(argv, {}, 'berth network rm NETWORK [NETWORK...]', { min: 1 });
  return forEachName(positionals, out, (n) => client.request(`/networks/${encodeURIComponent(n)}`, { method: 'DELETE' }));
}

export async function networkConnect({ client, argv }: CommandContext): Promise<void> {
  const { values, positionals } = parse(
    argv,
    { alias: { type: 'string', multiple: true, help: 'Add network-scoped alias for the container' }, ip: { type: 'string', help: 'IPv4 address (e.g., 172.30.100.104)' } },
    'berth network connect [--alias NAME] [--ip IP] NETWORK CONTAINER (stopped containers only)',
    { min: 2, max: 2 },
  );
  await client.request(`/networks/${encodeURIComponent(positionals[0])}/connect`, {
    method: 'POST',
    body: { Container: positionals[1], EndpointConfig: { Aliases: values.alias ?? [], IPAMConfig: values.ip ? { IPv4Address: values.ip } : undefined } },
  });
}

export async function networkDisconnect({ client, argv }: CommandContext): Promise<void> {
  const { positionals } = parse(argv, {}, 'berth network disconnect NETWORK CONTAINER (stopped containers only)', { min: 2, max: 2 });
  await client.request(`/networks/${encodeURIComponent(positionals[0])}/disconnect`, { method: 'POST', body: { Container: positionals[1] } });
}

export async function networkPrune({ client, argv, out }: CommandContext): Promise<void> {
  parse(argv, { force: { type: 'boolean', short: 'f', help: 'Do not prompt for confirmation' } }, 'berth network prune [OPTIONS]', { max: 0 });
  const res = await client.json('/networks/prune', { method: 'POST' });
  if (res.NetworksDeleted?.length) out.write(`Deleted Networks:\n${res.NetworksDeleted.join('\n')}\n`);
}
