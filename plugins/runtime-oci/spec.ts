/**
 * LaunchPlan -> OCI runtime bundle config.json (runtime-spec 1.0.2), which runc, crun, youki and
 * runsc all read. The isolators have already decided everything; this only translates.
 *
 * What does not translate one to one:
 * - plan.symlinks: runc makes /dev/ptmx, /dev/fd, /dev/stdin, /dev/stdout, /dev/stderr and
 *   /dev/core itself; other symlinks have no OCI field and are reported by `unsupportedParts`.
 * - plan.loopbackUp: runc brings `lo` up in every network namespace it creates.
 * - plan.cgroupPaths: expressed as one `linux.cgroupsPath`, relative to the runtime's own cgroup
 *   when the isolator put the container below berthd's cgroup (see `cgroupsPathFor`). No
 *   `linux.resources` are set: the cgroup isolator already wrote the limits into those dirs.
 */
import { readFileSync } from 'node:fs';
import { posix } from 'node:path';
import type { LaunchPlan } from '../../core/plugin';

export interface OciHook {
  path: string;
  args?: string[];
  env?: string[];
  timeout?: number;
}

export interface OciSpec {
  ociVersion: string;
  process: {
    terminal: boolean;
    consoleSize?: { height: number; width: number };
    user: { uid: number; gid: number; additionalGids?: number[] };
    args: string[];
    env: string[];
    cwd: string;
    capabilities: { bounding: string[]; effective: string[]; permitted: string[]; inheritable: string[]; ambient: string[] };
    rlimits?: { type: string; hard: number; soft: number }[];
    noNewPrivileges: boolean;
  };
  root: { path: string; readonly: boolean };
  hostname?: string;
  mounts: { destination: string; type: string; source: string; options?: string[] }[];
  hooks?: { createRuntime?: OciHook[]; poststart?: OciHook[] };
  linux: {
    namespaces: { type: string; path?: string }[];
    uidMappings?: { containerID: number; hostID: number; size: number }[];
    gidMappings?: { containerID: number; hostID: number; size: number }[];
    devices?: { path: string; type: string; major: number; minor: number; fileMode: number; uid: number; gid: number }[];
    maskedPaths: string[];
    readonlyPaths: string[];
    resources?: Record<string, unknown>;
    cgroupsPath?: string;
    /** Set as dockerd sets it: `shared` when a bind asks shared/rshared, else `rslave` when one asks slave. */
    rootfsPropagation?: string;
    /** OCI LinuxSeccomp (defaultAction, architectures, syscalls), as the isolator wrote it. */
    seccomp?: Record<string, unknown>;
  };
}

/** berth's namespace names -> the OCI ones. */
const NAMESPACE_TYPES: Record<string, string> = {
  pid: 'pid',
  mount: 'mount',
  mnt: 'mount',
  uts: 'uts',
  ipc: 'ipc',
  net: 'network',
  network: 'network',
  cgroup: 'cgroup',
  user: 'user',
};

/** Symlinks every OCI runtime makes in /dev by itself (runtime-spec "Default Devices" + runc). */
const RUNTIME_SYMLINKS = new Set(['/dev/ptmx', '/dev/fd', '/dev/stdin', '/dev/stdout', '/dev/stderr', '/dev/core']);

/** RLIMIT_NOFILE / nofile -> RLIMIT_NOFILE; unlimited (-1, Infinity) -> 2^64-1 as the spec wants. */
function rlimit(r: { type: string; soft: number; hard: number }) {
  const name = r.type.toUpperCase().startsWith('RLIMIT_') ? r.type.toUpperCase() : `RLIMIT_${r.type.toUpperCase()}`;
  const value = (n: number) => (n < 0 || n === Infinity ? 18446744073709551615 : Math.floor(n));
  return { type: name, soft: value(r.soft), hard: value(r.hard) };
}

type DeviceRule = { allow: boolean; type?: string; major?: number; minor?: number; access: string };

/** Docker's device allow list (moby oci/defaults.go) plus the plan's own nodes; all for privileged. */
function deviceRules(plan: LaunchPlan): DeviceRule[] {
  if (plan.capabilities.includes('CAP_SYS_ADMIN') && plan.capabilities.includes('CAP_MKNOD') && plan.capabilities.length > 30) {
    return [{ allow: true, access: 'rwm' }]; // privileged: every capability, every device
  }
  const c = (major: number, minor: number | undefined, access = 'rwm'): DeviceRule => ({ allow: true, type: 'c', major, ...(minor === undefined ? {} : { minor }), access });
  const rules: DeviceRule[] = [
    { allow: false, access: 'rwm' },
    { allow: true, type: 'c', access: 'm' },
    { allow: true, type: 'b', access: 'm' },
    c(1, 3),
    c(1, 5),
    c(1, 7),
    c(1, 8),
    c(1, 9),
    c(5, 0),
    c(5, 1),
    c(5, 2),
    c(136, undefined),
    c(10, 200),
  ];
  for (const d of plan.devices ?? []) rules.push({ allow: true, type: d.type, major: d.major, minor: d.minor, access: 'rwm' });
  return rules;
}

export interface BuildSpecOptions {
  /** `linux.cgroupsPath`, usually from `cgroupsPathFor(plan.cgroupPaths)`. */
  cgroupsPath?: string;
  hooks?: OciSpec['hooks'];
}

export function buildSpec(plan: LaunchPlan, opts: BuildSpecOptions = {}): OciSpec {
  const p = plan.process;
  if (!p.args.length) throw new Error('launch plan: process.args is empty (no command to run)');
  if (!plan.rootfs?.startsWith('/')) throw new Error(`launch plan: rootfs must be an absolute path, got ${JSON.stringify(plan.rootfs)}`);
  const namespaces = [
    ...new Set(
      plan.namespaces.map((n) => {
        const t = NAMESPACE_TYPES[n];
        if (!t) throw new Error(`launch plan: unknown namespace ${JSON.stringify(n)}`);
        return t;
      }),
    ),
  ].map((type): { type: string; path?: string } => ({ type }));
  // Shared namespaces (container:<id> modes): OCI joins a namespace given by path.
  for (const [n, path] of Object.entries(plan.enterNamespaces ?? {})) {
    const type = NAMESPACE_TYPES[n];
    if (!type) throw new Error(`launch plan: unknown namespace ${JSON.stringify(n)}`);
    namespaces.push({ type, path });
  }
  const caps = [...plan.capabilities];
  const spec: OciSpec = {
    ociVersion: '1.0.2',
    process: {
      terminal: p.terminal,
      ...(p.terminal && p.consoleSize ? { consoleSize: { height: p.consoleSize.rows, width: p.consoleSize.cols } } : {}),
      user: { uid: p.uid, gid: p.gid, ...(p.additionalGids.length ? { additionalGids: [...p.additionalGids] } : {}) },
      args: [...p.args],
      env: [...p.env],
      cwd: p.cwd || '/',
      // Docker's rule, as the native launcher does it: inheritable and ambient stay empty.
      capabilities: { bounding: caps, effective: caps, permitted: caps, inheritable: [], ambient: [] },
      ...(plan.rlimits?.length ? { rlimits: plan.rlimits.map(rlimit) } : {}),
      noNewPrivileges: plan.noNewPrivileges,
    },
    root: { path: plan.rootfs, readonly: !!plan.readonlyRootfs },
    ...(plan.hostname ? { hostname: plan.hostname } : {}),
    mounts: plan.mounts.map((m) => ({ destination: m.destination, type: m.type, source: m.source, options: [...m.options] })),
    ...(opts.hooks ? { hooks: opts.hooks } : {}),
    linux: {
      namespaces,
      ...(plan.uidMappings?.length ? { uidMappings: plan.uidMappings.map((m) => ({ ...m })) } : {}),
      ...(plan.gidMappings?.length ? { gidMappings: plan.gidMappings.map((m) => ({ ...m })) } : {}),
      ...(plan.devices?.length ? { devices: plan.devices.map((d) => ({ path: d.path, type: d.type, major: d.major, minor: d.minor, fileMode: d.fileMode & 0o7777, uid: d.uid, gid: d.gid })) } : {}),
      maskedPaths: [...plan.maskedPaths],
      readonlyPaths: [...plan.readonlyPaths],
      // runc rewrites the devices cgroup from this list (deny all, then allow): give it what
      // the cgroup isolator allows too, or the container cannot even open /dev/null.
      resources: { devices: deviceRules(plan) },
      ...(opts.cgroupsPath ? { cgroupsPath: opts.cgroupsPath } : {}),
      ...rootfsPropagation(plan),
      // The BPF program is for berth's launcher; runc builds its own from the OCI form.
      ...(plan.seccomp?.oci ? { seccomp: structuredClone(plan.seccomp.oci) } : {}),
    },
  };
  return spec;
}

/**
 * dockerd's rule (daemon/oci_linux.go): runc makes the container's / rslave unless told otherwise,
 * and a bind of a slave copy cannot send mounts back to the host, so a shared bind needs the root
 * `shared`; a slave bind needs it to be at least rslave.
 */
function rootfsPropagation(plan: LaunchPlan): { rootfsPropagation?: string } {
  const modes = plan.mounts.filter((m) => m.type === 'bind').flatMap((m) => m.options);
  if (modes.some((o) => o === 'shared' || o === 'rshared')) return { rootfsPropagation: 'shared' };
  if (modes.some((o) => o === 'slave' || o === 'rslave')) return { rootfsPropagation: 'rslave' };
  return {};
}

/** Parts of the plan an OCI runtime cannot carry out, for a warning (empty when all translate). */
export function unsupportedParts(plan: LaunchPlan): string[] {
  const out: string[] = [];
  for (const l of plan.symlinks ?? []) if (!RUNTIME_SYMLINKS.has(l.path)) out.push(`symlink ${l.path} -> ${l.target}`);
  if (plan.joinNamespaces && Object.keys(plan.joinNamespaces).length) out.push('joinNamespaces (exec)');
  if (plan.seccomp && !plan.seccomp.oci) out.push('seccomp (a BPF program with no OCI form)');
  return out;
}

interface CgroupMount {
  mountPoint: string;
  v2: boolean;
  /** v1: the controllers (and name=...) of the hierarchy. */
  options: string[];
}

function cgroupMounts(mountinfo: string): CgroupMount[] {
  const out: CgroupMount[] = [];
  for (const line of mountinfo.split('\n')) {
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const [fstype, , superOptions = ''] = line.slice(sep + 3).split(' ');
    if (fstype !== 'cgroup' && fstype !== 'cgroup2') continue;
    out.push({ mountPoint: line.split(' ')[4], v2: fstype === 'cgroup2', options: superOptions.split(',') });
  }
  return out;
}

/**
 * One `linux.cgroupsPath` for the container's cgroup dirs (one per hierarchy). runc reads a
 * relative path as relative to its own cgroup in each hierarchy; runc is berthd's grandchild, so
 * it sits in berthd's cgroups, and isolator.cgroups' default parent (`berth`, below berthd's own
 * cgroup) comes out as the same relative path everywhere. Otherwise an absolute path is used when
 * every hierarchy agrees; undefined when neither works (the runtime then picks its own and the
 * cgroup isolator moves the process in its attach phase).
 */
export function cgroupsPathFor(dirs: string[] | undefined, procSelf = { mountinfo: '', cgroup: '' }): string | undefined {
  if (!dirs?.length) return undefined;
  const mountinfo = procSelf.mountinfo || readFileSync('/proc/self/mountinfo', 'utf8');
  const cgroup = procSelf.cgroup || readFileSync('/proc/self/cgroup', 'utf8');
  const mounts = cgroupMounts(mountinfo);
  const own = cgroup
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const [, controllers, ...rest] = l.split(':');
      return { controllers: controllers ? controllers.split(',') : [], path: rest.join(':') };
    });
  const relatives = new Set<string>();
  const absolutes = new Set<string>();
  for (const dir of dirs) {
    const mount = mounts.filter((m) => dir === m.mountPoint || dir.startsWith(m.mountPoint + '/')).sort((a, b) => b.mountPoint.length - a.mountPoint.length)[0];
    if (!mount) return undefined;
    const inHierarchy = '/' + posix.relative(mount.mountPoint, dir);
    absolutes.add(inHierarchy);
    const ownLine = mount.v2 ? own.find((o) => o.controllers.length === 0) : own.find((o) => o.controllers.some((c) => mount.options.includes(c)));
    if (ownLine) {
      const rel = posix.relative(ownLine.path, inHierarchy);
      relatives.add(rel.startsWith('..') ? '\0' : rel);
    } else relatives.add('\0');
  }
  if (relatives.size === 1 && !relatives.has('\0') && !relatives.has('')) return [...relatives][0];
  if (absolutes.size === 1) return [...absolutes][0];
  return undefined;
}
