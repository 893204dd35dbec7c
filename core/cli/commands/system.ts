import type { CommandContext } from '../main';
import { filtersQuery, parse, parseTimestamp } from '../args';
import { printInspected, table } from '../render';
import { Format } from '../template';
import { UsageError } from '../main';
import { humanSize } from '../../util/format';

export async function plugins({ client, argv, out }: CommandContext): Promise<void> {
  parse(argv, {}, 'berth plugins', { max: 0 });
  const infos = await client.json<any[]>('/berth/plugins');
  out.write(
    table(
      ['URI', 'STATUS', 'SOURCE', 'REASON'],
      infos.map((p) => [p.uri, p.status, p.source, p.reason ?? '']),
    ),
  );
}

const CLIENT_VERSION = {
  Version: '0.1.0',
  ApiVersion: '1.43',
  DefaultAPIVersion: '1.43',
  GitCommit: '',
  GoVersion: process.version,
  Os: process.platform,
  Arch: process.arch === 'x64' ? 'amd64' : process.arch,
  BuildTime: '',
  Context: 'default',
  Experimental: true,
};

export async function version({ client, argv, out }: CommandContext): Promise<void> {
  const { values } = parse(argv, { format: { type: 'string', short: 'f', help: 'Format the output using the given Go template' } }, 'berth version [OPTIONS]', { max: 0 });
  if (values.format) {
    // docker's template data: {Client, Server}, the server part as GET /version gives it.
    out.write(new Format(values.format).render([{ Client: CLIENT_VERSION, Server: await client.json('/version') }]));
    return;
  }
  out.write(`Client:\n Version:     ${CLIENT_VERSION.Version}\n API version: ${CLIENT_VERSION.ApiVersion}\n Node:        ${process.version}\n\n`);
  const v = await client.json('/version');
  out.write(
    `Server: berthd\n Version:     ${v.Version}\n API version: ${v.ApiVersion} (minimum version ${v.MinAPIVersion})\n Runtime:     ${v.GoVersion}\n OS/Arch:     ${v.Os}/${v.Arch}\n Kernel:      ${v.KernelVersion}\n`,
  );
}

/** `name=seccomp,profile=builtin` as docker info shows it: the name, then each key capitalised. */
function securityOptions(opts: string[]): string[] {
  if (!opts.length) return [];
  return [
    'Security Options:',
    ...opts.flatMap((opt) => {
      const fields = opt.split(',').map((kv) => kv.split('='));
      const name = fields.find(([k]) => k === 'name')?.[1] ?? opt;
      return [` ${name}`, ...fields.filter(([k]) => k !== 'name').map(([k, v]) => `  ${k.charAt(0).toUpperCase()}${k.slice(1)}: ${v}`)];
    }),
  ];
}

export async function info({ client, argv, out }: CommandContext): Promise<void> {
  const { values } = parse(argv, { format: { type: 'string', short: 'f', help: 'Format the output using the given Go template' } }, 'berth info [OPTIONS]', { max: 0 });
  const i = await client.json('/info');
  if (values.format) {
    // docker's info data is the server's /info with the client's part beside it.
    out.write(new Format(values.format).render([{ ...i, ClientInfo: { Debug: false, Context: 'default', Plugins: [], Warnings: null } }]));
    return;
  }
  const lines = [
    `Server Version: ${i.ServerVersion}`,
    `Storage Driver: ${i.Driver}`,
    ...(i.DriverStatus ?? []).map((s: string[]) => ` ${s[0]}: ${s[1]}`),
    `Containers: ${i.Containers}`,
    ` Running: ${i.ContainersRunning}`,
    ` Paused: ${i.ContainersPaused}`,
    ` Stopped: ${i.ContainersStopped}`,
    `Images: ${i.Images}`,
    ...(i.CgroupVersion
      ? [
          `Cgroup Version: ${i.BerthCgroups?.version ?? i.CgroupVersion}`,
          `Cgroup Driver: ${i.CgroupDriver ?? 'cgroupfs'}`,
          ...(i.BerthCgroups ? [` Controllers: ${i.BerthCgroups.controllers.join(' ')}`] : []),
        ]
      : []),
    `Default Runtime: ${i.DefaultRuntime}`,
    ...securityOptions(i.SecurityOptions ?? []),
    `CRI: ${i.BerthCri?.enabled ? i.BerthCri.socket : 'disabled'}`,
    `Plugins:`,
    ...(i.BerthPlugins ?? []).map((p: any) => ` ${p.uri}: ${p.status}${p.reason ? ` (${p.reason})` : ''}`),
    `Kernel Version: ${i.KernelVersion}`,
    `Operating System: ${i.OperatingSystem}`,
    `Architecture: ${i.Architecture}`,
    `CPUs: ${i.NCPU}`,
    `Total Memory: ${humanSize(i.MemTotal)}`,
    `Berth Root Dir: ${i.DockerRootDir}`,
  ];
  out.write(lines.join('\n') + '\n');
}

export async function check({ client, out }: CommandContext): Promise<number> {
  const r = await client.json('/berth/system/check', { method: 'POST' });
  out.write(`checked ${r.blobs} blobs\n`);
  for (const d of r.corrupt) out.write(`corrupt: ${d}\n`);
  for (const d of r.missing) out.write(`missing: ${d}\n`);
  for (const d of r.orphaned) out.write(`orphaned: ${d}\n`);
  const quarantined: string[] = r.quarantined ?? [];
  for (const p of quarantined) out.write(`quarantined (could not be removed; inspect and delete by hand): ${p}\n`);
  const clean = !r.corrupt.length && !r.missing.length && !r.orphaned.length && !quarantined.length;
  out.write(clean ? 'store is clean\n' : `${r.corrupt.length} corrupt, ${r.missing.length} missing, ${r.orphaned.length} orphaned, ${quarantined.length} quarantined\n`);
  return r.corrupt.length || r.missing.length ? 1 : 0;
}

/** `berth inspect NAME`: a container when one has that name or id, else an image (docker's order). */
export async function inspect({ client, argv, out }: CommandContext): Promise<number> {
  const { values, positionals } = parse(
    argv,
    {
      format: { type: 'string', short: 'f', help: 'Format the output using the given Go template' },
      size: { type: 'boolean', short: 's', help: 'Display total file sizes if the type is container' },
      type: { type: 'string', help: 'Return JSON for specified type' },
    },
    'berth inspect [OPTIONS] NAME|ID [NAME|ID...]',
    { min: 1 },
  );
  const kinds = { container: ['containers'], image: ['images'], volume: ['volumes'], network: ['networks'] } as Record<string, string[]>;
  if (values.type && !kinds[values.type]) throw new UsageError(`"${values.type}" is not a valid value for --type`);
  const found = [];
  let code = 0;
  for (const name of positionals) {
    const paths = (values.type ? kinds[values.type] : ['containers', 'images']).map((k) =>
      k === 'containers' || k === 'images' ? `/${k}/${encodeURIComponent(name)}/json${k === 'containers' && values.size ? '?size=1' : ''}` : `/${k}/${encodeURIComponent(name)}`,
    );
    let obj;
    for (const p of paths) {
      obj = await client.json(p).catch((e) => (e.status === 404 ? undefined : Promise.reject(e)));
      if (obj) break;
    }
    if (obj) found.push(obj);
    else {
      process.stderr.write(`Error: No such ${values.type ? values.type : 'object'}: ${name}\n`);
      code = 1;
    }
  }
  out.write(printInspected(found, values.format));
  return code;
}

export async function df({ client, argv, out }: CommandContext): Promise<void> {
  const { values } = parse(argv, { verbose: { type: 'boolean', short: 'v', help: 'Show detailed information on space usage' } }, 'berth system df [OPTIONS]', { max: 0 });
  const d = await client.json('/system/df');
  const activeImages = d.Images.filter((i: any) => i.Containers > 0);
  // docker's own formula: what active images use, less what they share, is not reclaimable.
  const imagesReclaimable = Math.max(0, d.LayersSize - activeImages.reduce((a: number, i: any) => a + i.Size - i.SharedSize, 0));
  const containersSize = d.Containers.reduce((a: number, c: any) => a + c.SizeRw, 0);
  const stoppedSize = d.Containers.filter((c: any) => c.State !== 'running').reduce((a: number, c: any) => a + c.SizeRw, 0);
  const pct = (part: number, whole: number) => (whole ? ` (${Math.round((part / whole) * 100)}%)` : '');
  const volumes: { Name: string; UsageData: { RefCount: number; Size: number } }[] = d.Volumes ?? [];
  const activeVolumes = volumes.filter((v) => v.UsageData.RefCount > 0);
  const volumeBytes = (list: typeof volumes) => list.reduce((a, v) => a + Math.max(0, v.UsageData.Size), 0);
  const volumesSize = volumeBytes(volumes);
  const unusedVolumesSize = volumeBytes(volumes.filter((v) => v.UsageData.RefCount === 0));
  out.write(
    table(
      ['TYPE', 'TOTAL', 'ACTIVE', 'SIZE', 'RECLAIMABLE'],
      [
        ['Images', String(d.Images.length), String(activeImages.length), humanSize(d.LayersSize), humanSize(imagesReclaimable) + pct(imagesReclaimable, d.LayersSize)],
        [
          'Containers',
          String(d.Containers.length),
          String(d.Containers.filter((c: any) => c.State === 'running').length),
          humanSize(containersSize),
          humanSize(stoppedSize) + pct(stoppedSize, containersSize),
        ],
        ['Local Volumes', String(volumes.length), String(activeVolumes.length), humanSize(volumesSize), humanSize(unusedVolumesSize) + pct(unusedVolumesSize, volumesSize)],
        ['Build Cache', '0', '0', '0B', '0B'],
      ],
    ),
  );
  if (values.verbose) {
    out.write('\nImages space usage:\n\n');
    out.write(
      table(
        ['REPOSITORY', 'TAG', 'IMAGE ID', 'SIZE', 'SHARED SIZE', 'UNIQUE SIZE', 'CONTAINERS'],
        d.Images.flatMap((i: any) =>
          (i.RepoTags.length ? i.RepoTags : ['<none>:<none>']).map((t: string) => {
            const k = t.lastIndexOf(':');
            return [t.slice(0, k), t.slice(k + 1), i.Id.replace('sha256:', '').slice(0, 12), humanSize(i.Size), humanSize(i.SharedSize), humanSize(i.Size - i.SharedSize), String(i.Containers)];
          }),
        ),
      ),
    );
    out.write('\nContainers space usage:\n\n');
    out.write(
      table(
        ['CONTAINER ID', 'IMAGE', 'SIZE', 'STATUS', 'NAMES'],
        d.Containers.map((c: any) => [c.Id.slice(0, 12), c.Image, humanSize(c.SizeRw), c.Status, c.Names[0].replace(/^\//, '')]),
      ),
    );
    out.write('\nLocal Volumes space usage:\n\n');
    out.write(
      table(
        ['VOLUME NAME', 'LINKS', 'SIZE'],
        volumes.map((v) => [v.Name, String(v.UsageData.RefCount), humanSize(Math.max(0, v.UsageData.Size))]),
      ),
    );
  }
}

async function confirm(message: string, force: boolean | undefined): Promise<boolean> {
  if (force) return true;
  process.stdout.write(`${message}\nAre you sure you want to continue? [y/N] `);
  const line = await new Promise<string>((resolve) => {
    let data = '';
    process.stdin.on('data', (c) => {
      data += c;
      if (data.includes('\n')) resolve(data);
    });
    process.stdin.on('end', () => resolve(data));
  });
  process.stdin.pause();
  return /^y(es)?$/i.test(line.trim());
}

async function printImagePrune(client: CommandContext['client'], all: boolean, out: NodeJS.WriteStream): Promise<number> {
  const r = await client.json('/images/prune', { method: 'POST', query: { filters: JSON.stringify({ dangling: [all ? 'false' : 'true'] }) } });
  if (r.ImagesDeleted.length) {
    out.write('Deleted Images:\n');
    for (const d of r.ImagesDeleted) out.write(d.Untagged ? `untagged: ${d.Untagged}\n` : `deleted: ${d.Deleted}\n`);
    out.write('\n');
  }
  return r.SpaceReclaimed;
}

async function printContainerPrune(client: CommandContext['client'], out: NodeJS.WriteStream): Promise<number> {
  const r = await client.json('/containers/prune', { method: 'POST' });
  if (r.ContainersDeleted.length) out.write(`Deleted Containers:\n${r.ContainersDeleted.join('\n')}\n\n`);
  return r.SpaceReclaimed;
}

export async function prune({ client, argv, out }: CommandContext): Promise<number> {
  const { values } = parse(
    argv,
    { all: { type: 'boolean', short: 'a', help: 'Remove all unused images not just dangling ones' }, force: { type: 'boolean', short: 'f', help: 'Do not prompt for confirmation' } },
    'berth system prune [OPTIONS]',
    { max: 0 },
  );
  const what = `WARNING! This will remove:\n  - all stopped containers\n  - ${values.all ? 'all images without at least one container associated to them' : 'all dangling images'}`;
  if (!(await confirm(what, values.force))) return 1;
  const reclaimed = (await printContainerPrune(client, out)) + (await printImagePrune(client, !!values.all, out));
  out.write(`Total reclaimed space: ${humanSize(reclaimed)}\n`);
  return 0;
}

export async function imagePrune({ client, argv, out }: CommandContext): Promise<number> {
  const { values } = parse(
    argv,
    { all: { type: 'boolean', short: 'a', help: 'Remove all unused images, not just dangling ones' }, force: { type: 'boolean', short: 'f', help: 'Do not prompt for confirmation' } },
    'berth image prune [OPTIONS]',
    { max: 0 },
  );
  const what = values.all ? 'WARNING! This will remove all images without at least one container associated to them.' : 'WARNING! This will remove all dangling images.';
  if (!(await confirm(what, values.force))) return 1;
  out.write(`Total reclaimed space: ${humanSize(await printImagePrune(client, !!values.all, out))}\n`);
  return 0;
}

export async function containerPrune({ client, argv, out }: CommandContext): Promise<number> {
  const { values } = parse(argv, { force: { type: 'boolean', short: 'f', help: 'Do not prompt for confirmation' } }, 'berth container prune [OPTIONS]', { max: 0 });
  if (!(await confirm('WARNING! This will remove all stopped containers.', values.force))) return 1;
  out.write(`Total reclaimed space: ${humanSize(await printContainerPrune(client, out))}\n`);
  return 0;
}

/** docker's event line: `2026-12-03T08:04:22.123456789Z container start ID (image=busybox, name=web)`. */
function eventLine(ev: any): string {
  const ns = BigInt(ev.timeNano ?? ev.time * 1e9);
  const date = new Date(Number(ns / 1_000_000n)).toISOString().slice(0, 19);
  const attrs = Object.entries(ev.Actor?.Attributes ?? {})
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}=${v}`);
  return `${date}.${String(ns % 1_000_000_000n).padStart(9, '0')}Z ${ev.Type} ${ev.Action} ${ev.Actor?.ID ?? ''}${attrs.length ? ` (${attrs.join(', ')})` : ''}`;
}

export async function events({ client, argv, out }: CommandContext): Promise<void> {
  const { values } = parse(
    argv,
    {
      filter: { type: 'string', short: 'f', multiple: true, help: 'Filter output based on conditions provided' },
      format: { type: 'string', help: 'Format the output using the given Go template' },
      since: { type: 'string', help: 'Show all events created since timestamp' },
      until: { type: 'string', help: 'Stream events until this timestamp' },
    },
    'berth events [OPTIONS]',
    { max: 0 },
  );
  const template = values.format ? new Format(values.format) : undefined;
  const query = { since: parseTimestamp(values.since), until: parseTimestamp(values.until), filters: filtersQuery(values.filter) };
  await client.stream('/events', { query }, (ev) => out.write(template ? template.render([ev]) : eventLine(ev) + '\n'));
}
