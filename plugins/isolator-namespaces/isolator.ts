/**
 * `isolator.namespaces`: namespaces, the container's root filesystem view, /dev, Docker's masked
 * and read-only paths, capabilities, and the per-container /etc/hostname, /etc/hosts and
 * /etc/resolv.conf. It decides; the launcher only carries the plan out.
 */
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { hostname as hostHostname } from 'node:os';
import { dirname, join } from 'node:path';
import {
  ConflictError,
  InvalidArgumentError,
  CAPABILITIES,
  normalizeCapability,
  hostDevices,
  isSameProcess,
  readMonitorRecord,
  type IsolationTarget,
  type Isolator,
  type IsolatorInfo,
  type IdMapping,
  type LaunchPlan,
  type MountSpec,
  type HostDevice,
} from '../../core/plugin';
import { parseBind } from './binds';
import { DEFAULT_CAPABILITIES, DEFAULT_DEVICES, DEFAULT_HOSTS, DEFAULT_MASKED_PATHS, DEFAULT_READONLY_PATHS, DEFAULT_SYMLINKS, defaultMounts } from './defaults';

export interface NamespacesConfig {
  /** Give containers a user namespace with these maps (written from the host side in attach). */
  userNamespace?: { uidMappings: IdMapping[]; gidMappings: IdMapping[] } | null;
  /** Nameservers for /etc/resolv.conf when HostConfig.Dns is empty; default: the host's, minus loopback ones. */
  dns?: string[];
}

export const CONTAINER_FILES = ['hostname', 'hosts', 'resolv.conf'] as const;

type NetworkMode = 'none' | 'host' | 'container';

/** Namespaces a container can share with another one (`container:<id>` modes), by plan name. */
const SHARE_MODES = { net: 'NetworkMode', ipc: 'IpcMode', uts: 'UTSMode', pid: 'PidMode' } as const;
type Shared = keyof typeof SHARE_MODES;
const CONTAINER_MODE = /^container:([0-9a-f]{64})$/;

interface Settings {
  privileged: boolean;
  network: NetworkMode;
  readonlyRootfs: boolean;
  binds: MountSpec[];
  capAdd: string[];
  capDrop: string[];
  dns: string[];
  dnsSearch: string[];
  dnsOptions: string[];
  extraHosts: string[];
  /** Namespaces the container shares with the host instead of getting its own (PidMode/IpcMode/UTSMode/CgroupnsMode host). */
  hostNamespaces: Set<string>;
  ulimits: { type: string; soft: number; hard: number }[];
  /** /dev/shm size in bytes (HostConfig.ShmSize); 0 is Docker's default of 64 MiB. */
  shmSize: number;
  devices: HostDevice[];
  /** HostConfig.MaskedPaths / ReadonlyPaths replace Docker's lists when given. */
  maskedPaths: string[] | null;
  readonlyPaths: string[] | null;
  oomScoreAdj: number;
  noNewPrivileges: boolean;
  /** Namespace type -> full id of the container whose namespace this one shares. */
  shareWith: Partial<Record<Shared, string>>;
}

function stringList(hc: Record<string, unknown>, key: string): string[] {
  const v = hc[key];
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) {
    throw new InvalidArgumentError(`HostConfig.${key}: expected a list of strings`);
  }
  return v as string[];
}

/** Read and check the parts of HostConfig this isolator acts on; bad input names the key. */
export function parseHostConfig(hc: Record<string, unknown>): Settings {
  const mode = (hc.NetworkMode ?? 'default') as unknown;
  if (typeof mode !== 'string') throw new InvalidArgumentError('HostConfig.NetworkMode: expected a string');
  let network: NetworkMode;
  if (mode === 'host') network = 'host';
  // A namespace with lo up; isolator.network (when configured) adds the bridge network's interface.
  else if (mode === 'none' || mode === 'default' || mode === 'bridge' || mode === '') network = 'none';
  // A user-defined network (isolator.network puts its interfaces in): a namespace of its own, lo up.
  else if (/^[^\x00-\x1f\x7f/:]{1,128}$/.test(mode)) network = 'none';
  else if (CONTAINER_MODE.test(mode)) network = 'container';
  else throw new InvalidArgumentError(`HostConfig.NetworkMode: unsupported network mode ${JSON.stringify(mode)} (none, host, bridge/default)`);
  const capList = (key: string) =>
    stringList(hc, key).map((c) => {
      if (c.toUpperCase() === 'ALL') return 'ALL';
      try {
        return normalizeCapability(c);
      } catch {
        throw new InvalidArgumentError(`HostConfig.${key}: unknown capability ${JSON.stringify(c)}`);
      }
    });
  for (const host of stringList(hc, 'ExtraHosts')) {
    if (!/^[^:\s]+:\S+$/.test(host)) throw new InvalidArgumentError(`HostConfig.ExtraHosts: invalid entry ${JSON.stringify(host)} (expected host:ip)`);
  }
  return {
    privileged: hc.Privileged === true,
    network,
    readonlyRootfs: hc.ReadonlyRootfs === true,
    binds: stringList(hc, 'Binds').map(parseBind),
    capAdd: capList('CapAdd'),
    capDrop: capList('CapDrop'),
    dns: stringList(hc, 'Dns'),
    dnsSearch: stringList(hc, 'DnsSearch'),
    dnsOptions: stringList(hc, 'DnsOptions'),
    extraHosts: stringList(hc, 'ExtraHosts'),
    hostNamespaces: new Set(
      (
        [
          ['pid', 'PidMode'],
          ['ipc', 'IpcMode'],
          ['uts', 'UTSMode'],
          ['cgroup', 'CgroupnsMode'],
        ] as const
      )
        .filter(([, key]) => hc[key] === 'host')
        .map(([ns]) => ns),
    ),
    ulimits: ((hc.Ulimits ?? []) as { Name: string; Soft: number; Hard: number }[]).map((u) => ({ type: u.Name, soft: u.Soft, hard: u.Hard })),
    shmSize: typeof hc.ShmSize === 'number' ? hc.ShmSize : 0,
    devices: hostDevices(hc.Devices),
    maskedPaths: hc.MaskedPaths === undefined || hc.MaskedPaths === null ? null : stringList(hc, 'MaskedPaths'),
    readonlyPaths: hc.ReadonlyPaths === undefined || hc.ReadonlyPaths === null ? null : stringList(hc, 'ReadonlyPaths'),
    oomScoreAdj: oomScoreAdj(hc.OomScoreAdj),
    noNewPrivileges: securityOptions(stringList(hc, 'SecurityOpt')),
    shareWith: parseShareModes(hc),
  };
}

/** NetworkMode/IpcMode/UTSMode/PidMode `container:<id>` (the id in full: core resolves names at create). */
function parseShareModes(hc: Record<string, unknown>): Partial<Record<Shared, string>> {
  const out: Partial<Record<Shared, string>> = {};
  for (const [ns, key] of Object.entries(SHARE_MODES) as [Shared, string][]) {
    const v = hc[key];
    if (typeof v !== 'string' || !v.startsWith('container:')) continue;
    const m = CONTAINER_MODE.exec(v);
    if (!m) throw new InvalidArgumentError(`HostConfig.${key}: expected container:<full container id>, got ${JSON.stringify(v)}`);
    out[ns] = m[1];
  }
  return out;
}

/**
 * HostConfig.SecurityOpt (checked by core, Docker's parseSecurityOpt): `no-new-privileges` is the
 * one applied here. Older clients write `key:value`.
 */
function securityOptions(opts: string[]): boolean {
  let noNewPrivileges = false;
  for (const opt of opts) {
    const [key, value = ''] = opt.split(/[=:]/, 2);
    if (key === 'no-new-privileges') noNewPrivileges = value === '' || value === 'true';
  }
  return noNewPrivileges;
}

function oomScoreAdj(v: unknown): number {
  if (v === undefined || v === null) return 0;
  if (!Number.isInteger(v) || (v as number) < -1000 || (v as number) > 1000) throw new InvalidArgumentError(`HostConfig.OomScoreAdj: invalid value ${JSON.stringify(v)}, range is from -1000 to 1000`);
  return v as number;
}

/** Docker's rule: start from the defaults (or all when ALL is added), add, then drop. */
export function effectiveCapabilities(s: Pick<Settings, 'privileged' | 'capAdd' | 'capDrop'>): string[] {
  if (s.privileged) return [...CAPABILITIES];
  let caps = new Set<string>(s.capAdd.includes('ALL') ? CAPABILITIES : DEFAULT_CAPABILITIES);
  for (const c of s.capAdd) if (c !== 'ALL') caps.add(c);
  if (s.capDrop.includes('ALL')) caps = new Set(s.capAdd.filter((c) => c !== 'ALL'));
  for (const c of s.capDrop) caps.delete(c);
  return CAPABILITIES.filter((c) => caps.has(c));
}

function mapFile(maps: IdMapping[]): string {
  return maps.map((m) => `${m.containerID} ${m.hostID} ${m.size}\n`).join('');
}

export class NamespacesIsolator implements Isolator {
  readonly name = 'namespaces';

  constructor(private readonly config: NamespacesConfig) {}

  /** Every container gets its own cgroup namespace unless it asks for the host's (dockerd lists it so). */
  info(): IsolatorInfo {
    return { securityOptions: ['name=cgroupns'] };
  }

  async setup(target: IsolationTarget): Promise<void> {
    const s = parseHostConfig(target.hostConfig); // refuse bad input before anything exists
    // Docker creates a missing bind source directory; an existing source (a file too, as kubelet's
    // etc-hosts and termination-log) is bound as it is.
    for (const b of s.binds) {
      const missing = await stat(b.source).then(
        () => false,
        (err: NodeJS.ErrnoException) => err.code === 'ENOENT',
      );
      if (missing) await mkdir(b.source, { recursive: true });
    }
  }

  async plan(target: IsolationTarget, plan: LaunchPlan): Promise<void> {
    const s = parseHostConfig(target.hostConfig);
    const ns = new Set(plan.namespaces);
    for (const n of ['mount', 'pid', 'uts', 'ipc', 'cgroup']) if (!s.hostNamespaces.has(n)) ns.add(n);
    if (s.network === 'none') ns.add('net');
    else ns.delete('net');
    const enter = await this.sharedNamespaces(target, s);
    for (const type of Object.keys(enter)) ns.delete(type);
    if (Object.keys(enter).length) plan.enterNamespaces = enter;
    const userns = this.config.userNamespace;
    if (userns) {
      ns.add('user');
      plan.uidMappings = userns.uidMappings;
      plan.gidMappings = userns.gidMappings;
    }
    plan.namespaces = [...ns];
    plan.loopbackUp = s.network === 'none';
    const hostUts = s.hostNamespaces.has('uts');
    plan.hostname ||= s.network === 'host' || hostUts ? hostHostname() : target.containerId.slice(0, 12);
    // A shared UTS namespace keeps the hostname its owner set; the host's is never set from here.
    if (enter.uts || hostUts) plan.hostname = undefined;

    // Mounts: the defaults first (unless the plan already has that destination), then the
    // container's /etc files, then the user's binds, which may cover anything before them.
    const taken = new Set(plan.mounts.map((m) => m.destination));
    const mounts = defaultMounts({ privileged: s.privileged, shmSize: s.shmSize, hostIpc: s.hostNamespaces.has('ipc') }).filter((m) => !taken.has(m.destination));
    // Sharing a network namespace means sharing its /etc/hosts and resolv.conf (and hostname), as Docker does.
    const filesDir = s.shareWith.net ? join(dirname(target.stateDir), s.shareWith.net) : target.stateDir;
    if (!s.shareWith.net) await this.writeContainerFiles(target, hostUts ? hostHostname() : (plan.hostname ?? target.containerId.slice(0, 12)), s);
    for (const f of CONTAINER_FILES) {
      const destination = `/etc/${f}`;
      if (taken.has(destination) || s.binds.some((b) => b.destination === destination)) continue;
      mounts.push({ destination, type: 'bind', source: join(filesDir, f), options: ['rbind', 'rprivate'] });
    }
    plan.mounts = [...mounts, ...plan.mounts, ...s.binds];
    plan.devices = [...(plan.devices ?? []), ...DEFAULT_DEVICES, ...s.devices.map((d) => d.spec)];
    plan.symlinks = [...(plan.symlinks ?? []), ...DEFAULT_SYMLINKS];
    if (!s.privileged) {
      plan.maskedPaths = [...new Set([...plan.maskedPaths, ...(s.maskedPaths ?? DEFAULT_MASKED_PATHS)])];
      plan.readonlyPaths = [...new Set([...plan.readonlyPaths, ...(s.readonlyPaths ?? DEFAULT_READONLY_PATHS)])];
    } else {
      plan.maskedPaths = [];
      plan.readonlyPaths = [];
    }
    plan.capabilities = effectiveCapabilities(s);
    plan.readonlyRootfs = plan.readonlyRootfs || s.readonlyRootfs;
    plan.noNewPrivileges = plan.noNewPrivileges || s.noNewPrivileges;
    if (s.ulimits.length) plan.rlimits = [...(plan.rlimits ?? []), ...s.ulimits]; // applied in order: the container's last
  }

  async attach(target: IsolationTarget, pid: number): Promise<void> {
    // The container's own process only; exec sessions (joining) keep the score they start with.
    if (target.joining) return;
    const { oomScoreAdj } = parseHostConfig(target.hostConfig);
    if (oomScoreAdj) await writeFile(`/proc/${pid}/oom_score_adj`, String(oomScoreAdj));
    const userns = this.config.userNamespace;
    // An exec joins the container's user namespace, whose maps are already written.
    if (!userns) return;
    // The child waits in its new user namespace; as the host's root we may write any map.
    await writeFile(`/proc/${pid}/uid_map`, mapFile(userns.uidMappings));
    await writeFile(`/proc/${pid}/gid_map`, mapFile(userns.gidMappings));
  }

  async cleanup(target: IsolationTarget): Promise<void> {
    await Promise.all(CONTAINER_FILES.map((f) => rm(join(target.stateDir, f), { force: true })));
  }

  /**
   * /proc paths of the namespaces shared with other containers. The owner must be running; its
   * pid comes from the monitor's record in its state dir (a sibling of ours), checked against its
   * start time so a recycled pid is never joined.
   */
  private async sharedNamespaces(target: IsolationTarget, s: Settings): Promise<Record<string, string>> {
    const out: Record<string, string> = {};
    for (const [ns, owner] of Object.entries(s.shareWith) as [Shared, string][]) {
      const record = await readMonitorRecord(join(dirname(target.stateDir), owner)).catch(() => undefined);
      if (!record || !isSameProcess(record.pid, record.pidStartTime)) {
        throw new ConflictError(`HostConfig.${SHARE_MODES[ns]}: cannot join container ${owner}: it is not running`);
      }
      out[ns] = `/proc/${record.pid}/ns/${ns}`;
    }
    return out;
  }

  private async writeContainerFiles(target: IsolationTarget, name: string, s: Settings): Promise<void> {
    await mkdir(target.stateDir, { recursive: true, mode: 0o700 });
    let hosts: string;
    let resolv: string;
    if (s.network === 'host') {
      hosts = await readFile('/etc/hosts', 'utf8').catch(() => `${DEFAULT_HOSTS.join('\n')}\n`);
      resolv = await readFile('/etc/resolv.conf', 'utf8').catch(() => '');
    } else {
      hosts = [...DEFAULT_HOSTS, ...s.extraHosts.map((h) => `${h.slice(h.indexOf(':') + 1)}\t${h.slice(0, h.indexOf(':'))}`)].join('\n') + '\n';
      resolv = await this.resolvConf(s);
    }
    await Promise.all([
      writeFile(join(target.stateDir, 'hostname'), `${name}\n`, { mode: 0o644 }),
      writeFile(join(target.stateDir, 'hosts'), hosts, { mode: 0o644 }),
      writeFile(join(target.stateDir, 'resolv.conf'), resolv, { mode: 0o644 }),
    ]);
  }

  /** Docker's rule: the host's resolv.conf without loopback nameservers (they mean nothing in a
   * network namespace); HostConfig.Dns/DnsSearch/DnsOptions replace the matching lines. */
  private async resolvConf(s: Settings): Promise<string> {
    const host = await readFile('/etc/resolv.conf', 'utf8').catch(() => '');
    const lines = host.split('\n').filter((l) => l.trim() && !l.trim().startsWith('#'));
    const keep = (kind: string) => lines.filter((l) => l.trim().split(/\s+/)[0] === kind);
    const nameservers = s.dns.length
      ? s.dns
      : this.config.dns?.length
        ? this.config.dns
        : keep('nameserver')
            .map((l) => l.trim().split(/\s+/)[1])
            .filter((ip) => ip && !/^127\.|^::1$/.test(ip));
    const out: string[] = [];
    if (s.dnsSearch.length) out.push(`search ${s.dnsSearch.join(' ')}`);
    else out.push(...keep('search'), ...keep('domain'));
    out.push(...nameservers.map((ip) => `nameserver ${ip}`));
    if (s.dnsOptions.length) out.push(`options ${s.dnsOptions.join(' ')}`);
    else out.push(...keep('options'));
    return out.length ? `${out.join('\n')}\n` : '';
  }
}
