/**
 * docker's formatter contexts: the fields `ps`, `images`, `volume ls`, `network ls` and `stats`
 * offer to --format (methods, as in docker, so `.Label "k"` takes an argument), the column titles
 * its tables print, and its default table formats.
 */
import { STRUCT } from './template';
import { humanDuration, humanSize } from '../util/format';

/** Go's time.Time.String() in the local zone: 2026-12-03 08:04:22 +0000 UTC. */
export function goTimeString(unixSeconds: number): string {
  const d = new Date(unixSeconds * 1000);
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  const off = -d.getTimezoneOffset();
  const zone = off === 0 ? 'UTC' : (new Intl.DateTimeFormat('en-US', { timeZoneName: 'short' }).formatToParts(d).find((x) => x.type === 'timeZoneName')?.value ?? '');
  const sign = off < 0 ? '-' : '+';
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())} ${sign}${p(Math.floor(Math.abs(off) / 60))}${p(Math.abs(off) % 60)} ${zone}`;
}

/** docker's Ellipsis: at most n characters, the last one an ellipsis when cut. */
export function ellipsis(s: string, n: number): string {
  const chars = [...s];
  return chars.length <= n ? s : chars.slice(0, n - 1).join('') + '…';
}

const since = (unixSeconds: number) => `${humanDuration(Date.now() - unixSeconds * 1000)} ago`;
const sortedLabels = (labels: Record<string, string> | null | undefined) =>
  Object.entries(labels ?? {})
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}=${v}`)
    .join(',');

/** docker's header for `.Label "com.example.some-key"`: the last part of the key, dashes and underscores as spaces. */
const labelHeader = (name: string) => (name.split('.').pop() ?? '').replace(/[-_]/g, ' ');

function struct<T extends object>(type: string, fields: T): T {
  const obj = {
    ...fields,
    toJSON: () =>
      Object.fromEntries(
        Object.entries(fields)
          .filter(([k]) => k !== 'Label')
          .sort(([a], [b]) => a.localeCompare(b))
          .map(([k, f]) => [k, typeof f === 'function' ? (f as () => unknown)() : f]),
      ),
  };
  Object.defineProperty(obj, STRUCT, { value: type });
  Object.defineProperty(obj, 'toJSON', { enumerable: false });
  return obj;
}

export const CONTAINER_HEADERS = {
  ID: 'CONTAINER ID',
  Image: 'IMAGE',
  Command: 'COMMAND',
  CreatedAt: 'CREATED AT',
  RunningFor: 'CREATED',
  Ports: 'PORTS',
  State: 'STATE',
  Status: 'STATUS',
  Size: 'SIZE',
  Names: 'NAMES',
  Labels: 'LABELS',
  Label: labelHeader,
  Mounts: 'MOUNTS',
  LocalVolumes: 'LOCAL VOLUMES',
  Networks: 'NETWORKS',
};
export const CONTAINER_TABLE = 'table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}';

/** One row of `ps` (a summary from GET /containers/json). */
export function containerContext(c: any, trunc: boolean) {
  return struct('*formatter.ContainerContext', {
    ID: () => (trunc ? c.Id.slice(0, 12) : c.Id),
    Names: () =>
      (c.Names ?? [])
        .map((n: string) => n.replace(/^\//, ''))
        .filter((n: string) => !trunc || !n.includes('/'))
        .join(','),
    Image: () => (!c.Image ? '<no image>' : trunc ? c.Image.replace(/@sha256:[a-f0-9]+$/, '').replace(/^sha256:([a-f0-9]{12})[a-f0-9]*$/, '$1') : c.Image),
    Command: () => JSON.stringify(trunc ? ellipsis(c.Command ?? '', 20) : (c.Command ?? '')),
    CreatedAt: () => goTimeString(c.Created),
    RunningFor: () => since(c.Created),
    Ports: () => formatPorts(c.Ports),
    State: () => c.State,
    Status: () => c.Status,
    Size: () => {
      const rw = humanSize(c.SizeRw ?? 0);
      return c.SizeRootFs > 0 ? `${rw} (virtual ${humanSize(c.SizeRootFs)})` : rw;
    },
    Labels: () => sortedLabels(c.Labels),
    Label: (name: string) => c.Labels?.[name] ?? '',
    Mounts: () => (c.Mounts ?? []).map((m: any) => (trunc ? ellipsis(m.Name || m.Source, 15) : m.Name || m.Source)).join(','),
    LocalVolumes: () => String((c.Mounts ?? []).filter((m: any) => m.Driver === 'local').length),
    Networks: () =>
      Object.keys(c.NetworkSettings?.Networks ?? {})
        .sort()
        .join(','),
  });
}

export const IMAGE_HEADERS = {
  ID: 'IMAGE ID',
  Repository: 'REPOSITORY',
  Tag: 'TAG',
  Digest: 'DIGEST',
  CreatedSince: 'CREATED',
  CreatedAt: 'CREATED AT',
  Size: 'SIZE',
  Containers: 'CONTAINERS',
  VirtualSize: 'VIRTUAL SIZE',
  SharedSize: 'SHARED SIZE',
  UniqueSize: 'UNIQUE SIZE',
};
export const IMAGE_TABLE = 'table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}';
export const IMAGE_TABLE_DIGESTS = 'table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}';

/** The rows docker's `images` makes of one image: one per repository:tag (and per digest with --digests). */
export function imageContexts(img: any, opts: { trunc: boolean; digests: boolean }) {
  const tags = new Map<string, string[]>();
  const digests = new Map<string, string[]>();
  for (const t of img.RepoTags ?? []) {
    const i = t.lastIndexOf(':');
    if (i > t.lastIndexOf('/')) (tags.get(t.slice(0, i)) ?? tags.set(t.slice(0, i), []).get(t.slice(0, i))!).push(t.slice(i + 1));
  }
  for (const d of img.RepoDigests ?? []) {
    const [repo, digest] = d.split('@');
    if (digest) (digests.get(repo) ?? digests.set(repo, []).get(repo)!).push(digest);
  }
  const rows: { repo: string; tag: string; digest: string }[] = [];
  for (const [repo, list] of tags) {
    const ds = opts.digests ? (digests.get(repo) ?? []) : [];
    digests.delete(repo);
    for (const tag of list) {
      if (!ds.length) rows.push({ repo, tag, digest: '<none>' });
      for (const digest of ds) rows.push({ repo, tag, digest });
    }
  }
  for (const [repo, ds] of digests) {
    if (opts.digests) for (const digest of ds) rows.push({ repo, tag: '<none>', digest });
    else rows.push({ repo, tag: '<none>', digest: '<none>' });
  }
  if (!rows.length) rows.push({ repo: '<none>', tag: '<none>', digest: '<none>' });
  return rows.map((r) =>
    struct('*formatter.imageContext', {
      ID: () => (opts.trunc ? img.Id.replace(/^sha256:/, '').slice(0, 12) : img.Id),
      Repository: () => r.repo,
      Tag: () => r.tag,
      Digest: () => r.digest,
      CreatedSince: () => since(img.Created),
      CreatedAt: () => goTimeString(img.Created),
      Size: () => humanSize(img.Size),
      Containers: () => (img.Containers === -1 ? 'N/A' : String(img.Containers)),
      VirtualSize: () => humanSize(img.VirtualSize ?? img.Size),
      SharedSize: () => (img.SharedSize === -1 ? 'N/A' : humanSize(img.SharedSize)),
      UniqueSize: () => (img.SharedSize === -1 ? 'N/A' : humanSize(img.Size - img.SharedSize)),
    }),
  );
}

export const VOLUME_HEADERS = { Name: 'VOLUME NAME', Driver: 'DRIVER', Scope: 'SCOPE', Mountpoint: 'MOUNTPOINT', Labels: 'LABELS', Label: labelHeader, Links: 'LINKS', Size: 'SIZE' };
export const VOLUME_TABLE = 'table {{.Driver}}\t{{.Name}}';

export function volumeContext(v: any) {
  return struct('*formatter.volumeContext', {
    Name: () => v.Name,
    Driver: () => v.Driver,
    Scope: () => v.Scope ?? 'local',
    Mountpoint: () => v.Mountpoint,
    Labels: () => sortedLabels(v.Labels),
    Label: (name: string) => v.Labels?.[name] ?? '',
    Links: () => (v.UsageData?.RefCount >= 0 ? String(v.UsageData.RefCount) : 'N/A'),
    Size: () => (v.UsageData?.Size >= 0 ? humanSize(v.UsageData.Size) : 'N/A'),
  });
}

export const NETWORK_HEADERS = {
  ID: 'NETWORK ID',
  Name: 'NAME',
  Driver: 'DRIVER',
  Scope: 'SCOPE',
  IPv6: 'IPV6',
  Internal: 'INTERNAL',
  Labels: 'LABELS',
  Label: labelHeader,
  CreatedAt: 'CREATED',
  Subnet: 'SUBNET',
};
/** docker's columns plus the subnet, which berth has always shown. */
export const NETWORK_TABLE = 'table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Subnet}}\t{{.Scope}}';

export function networkContext(n: any, trunc: boolean) {
  return struct('*formatter.networkContext', {
    ID: () => (trunc ? n.Id.slice(0, 12) : n.Id),
    Name: () => n.Name,
    Driver: () => n.Driver,
    Scope: () => n.Scope,
    IPv6: () => String(!!n.EnableIPv6),
    Internal: () => String(!!n.Internal),
    Labels: () => sortedLabels(n.Labels),
    Label: (name: string) => n.Labels?.[name] ?? '',
    CreatedAt: () => (n.Created ? goTimeString(Date.parse(n.Created) / 1000) : ''),
    Subnet: () => n.IPAM?.Config?.[0]?.Subnet ?? '',
  });
}

export const STATS_HEADERS = {
  Container: 'CONTAINER',
  ID: 'CONTAINER ID',
  Name: 'NAME',
  CPUPerc: 'CPU %',
  MemUsage: 'MEM USAGE / LIMIT',
  MemPerc: 'MEM %',
  NetIO: 'NET I/O',
  BlockIO: 'BLOCK I/O',
  PIDs: 'PIDS',
};
export const STATS_TABLE = 'table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}';

export interface StatsRow {
  container: string;
  id: string;
  name: string;
  cpu: string;
  mem: string;
  memPerc: string;
  net: string;
  block: string;
  pids: string;
}

export function statsContext(s: StatsRow, trunc: boolean) {
  return struct('*formatter.statsContext', {
    Container: () => s.container,
    ID: () => (trunc ? s.id.slice(0, 12) : s.id),
    Name: () => s.name,
    CPUPerc: () => s.cpu,
    MemUsage: () => s.mem,
    MemPerc: () => s.memPerc,
    NetIO: () => s.net,
    BlockIO: () => s.block,
    PIDs: () => s.pids,
  });
}

/** `ps`'s PORTS column: 127.0.0.1:8080->80/tcp, 80/tcp for exposed-only ports. */
export function formatPorts(ports: { IP?: string; PrivatePort: number; PublicPort?: number; Type: string }[]): string {
  return (ports ?? []).map((p) => (p.PublicPort ? `${p.IP ?? '0.0.0.0'}:${p.PublicPort}->${p.PrivatePort}/${p.Type}` : `${p.PrivatePort}/${p.Type}`)).join(', ');
}
