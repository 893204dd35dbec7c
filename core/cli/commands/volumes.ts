/** `berth volume ...`, plus the parsing of `run --mount` and `--tmpfs`. */
import type { CommandContext } from '../main';
import { parse } from '../args';
import { forEachName, printInspected } from '../render';
import { VOLUME_HEADERS, VOLUME_TABLE, volumeContext } from '../formatters';
import { Format } from '../template';

export async function volumeCreate({ client, argv, out }: CommandContext): Promise<void> {
  const { values, positionals } = parse(
    argv,
    {
      driver: { type: 'string', short: 'd', help: 'Specify volume driver name' },
      opt: { type: 'string', short: 'o', multiple: true, help: 'Set driver specific options' },
      label: { type: 'string', multiple: true, help: 'Set metadata for a volume' },
      name: { type: 'string', help: 'Specify volume name' },
    },
    'berth volume create [-d DRIVER] [-o KEY=VALUE] [NAME]',
    { max: 1 },
  );
  const kv = (list: string[] | undefined) => Object.fromEntries((list ?? []).map((l) => [l.split('=')[0], l.split('=').slice(1).join('=')]));
  const res = await client.json('/volumes/create', {
    method: 'POST',
    body: { Name: positionals[0] ?? values.name ?? '', Driver: values.driver ?? 'local', DriverOpts: kv(values.opt), Labels: kv(values.label) },
  });
  out.write(`${res.Name}\n`);
}

export async function volumeLs({ client, argv, out }: CommandContext): Promise<void> {
  const { values } = parse(
    argv,
    {
      filter: { type: 'string', short: 'f', multiple: true, help: "Provide filter values (e.g. 'dangling=true')" },
      format: { type: 'string', help: 'Pretty-print volumes using a Go template' },
      quiet: { type: 'boolean', short: 'q', help: 'Only display volume names' },
    },
    'berth volume ls [OPTIONS]',
    { max: 0 },
  );
  const filters: Record<string, string[]> = {};
  for (const f of values.filter ?? []) (filters[f.split('=')[0]] ??= []).push(f.split('=').slice(1).join('='));
  const res = await client.json('/volumes', { query: { filters: Object.keys(filters).length ? JSON.stringify(filters) : undefined } });
  let format = values.format ?? 'table';
  if (format === 'table') format = values.quiet ? '{{.Name}}' : VOLUME_TABLE;
  out.write(new Format(format).render((res.Volumes ?? []).map(volumeContext), VOLUME_HEADERS));
}

export async function volumeInspect({ client, argv, out }: CommandContext): Promise<number> {
  const { values, positionals } = parse(argv, { format: { type: 'string', short: 'f', help: 'Format the output using the given Go template' } }, 'berth volume inspect [OPTIONS] VOLUME [VOLUME...]', {
    min: 1,
  });
  const found: unknown[] = [];
  let code = 0;
  for (const n of positionals) {
    try {
      found.push(await client.json(`/volumes/${encodeURIComponent(n)}`));
    } catch (e) {
      process.stderr.write(`Error response from daemon: ${(e as Error).message}\n`);
      code = 1;
    }
  }
  out.write(printInspected(found, values.format));
  return code;
}

export async function volumeRm({ client, argv, out }: CommandContext): Promise<number> {
  const { values, positionals } = parse(argv, { force: { type: 'boolean', short: 'f', help: 'Force the removal of one or more volumes' } }, 'berth volume rm [OPTIONS] VOLUME [VOLUME...]', { min: 1 });
  return forEachName(positionals, out, (n) => client.request(`/volumes/${encodeURIComponent(n)}`, { method: 'DELETE', query: { force: values.force } }));
}

export async function volumePrune({ client, argv, out }: CommandContext): Promise<void> {
  const { values } = parse(
    argv,
    { all: { type: 'boolean', short: 'a', help: 'Remove all unused volumes, not just anonymous ones' }, force: { type: 'boolean', short: 'f', help: 'Do not prompt for confirmation' } },
    'berth volume prune [OPTIONS]',
    { max: 0 },
  );
  const res = await client.json('/volumes/prune', { method: 'POST', query: { filters: values.all ? JSON.stringify({ all: ['true'] }) : undefined } });
  if (res.VolumesDeleted?.length) out.write(`Deleted Volumes:\n${res.VolumesDeleted.join('\n')}\n`);
  out.write(`\nTotal reclaimed space: ${res.SpaceReclaimed ?? 0}B\n`);
}
