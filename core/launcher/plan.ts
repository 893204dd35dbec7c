/**
 * Serialises a LaunchPlan into the launcher's line format (`berth-plan 1`, documented at the top
 * of core/launcher/launch/launcher.h). This is the only writer of that format; the C parser is strict and refuses
 * unknown keys, so the two move together.
 */
import type { LaunchPlan, ProcessSpec } from '../contracts/launch';
import { capabilityMask } from './caps';

export const PLAN_VERSION = 1;

/** getrlimit(2) resource numbers on Linux (x86_64 and arm64 agree). */
export const RLIMITS: Readonly<Record<string, number>> = {
  RLIMIT_CPU: 0,
  RLIMIT_FSIZE: 1,
  RLIMIT_DATA: 2,
  RLIMIT_STACK: 3,
  RLIMIT_CORE: 4,
  RLIMIT_RSS: 5,
  RLIMIT_NPROC: 6,
  RLIMIT_NOFILE: 7,
  RLIMIT_MEMLOCK: 8,
  RLIMIT_AS: 9,
  RLIMIT_LOCKS: 10,
  RLIMIT_SIGPENDING: 11,
  RLIMIT_MSGQUEUE: 12,
  RLIMIT_NICE: 13,
  RLIMIT_RTPRIO: 14,
  RLIMIT_RTTIME: 15,
};

const NAMESPACES = new Set(['pid', 'mount', 'mnt', 'uts', 'ipc', 'net', 'network', 'cgroup', 'user']);

/**
 * The plan a container start begins with, before any isolator adds to it: the rootfs and the
 * process, nothing isolated yet. The container manager, the test harnesses and the isolator
 * conformance suite all start from this one shape.
 */
export function newLaunchPlan(rootfs: string, process: ProcessSpec, hostname?: string): LaunchPlan {
  return {
    namespaces: [],
    rootfs,
    mounts: [],
    maskedPaths: [],
    readonlyPaths: [],
    capabilities: [],
    noNewPrivileges: false,
    ...(hostname !== undefined ? { hostname } : {}),
    process,
  };
}

export interface SerializeOptions {
  /** The container's (or exec session's) state dir: runtime.json, exit, attach.sock, the log. */
  stateDir: string;
}

function field(name: string, value: string | number): string {
  const s = String(value);
  if (s.includes('\0')) throw new Error(`launch plan: ${name} contains a NUL byte`);
  return s.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/\t/g, '\\t');
}

function absolute(name: string, p: string): string {
  if (!p.startsWith('/')) throw new Error(`launch plan: ${name} must be an absolute path, got ${JSON.stringify(p)}`);
  return p;
}

/** BPF_MAXINSNS: the kernel refuses longer classic-BPF programs. */
const MAX_BPF_INSNS = 4096;

/** Filters already checked: containers share a few (the default profile's), each tens of KiB of hex. */
const checkedFilters = new Map<string, string>();

/** A seccomp program as hex, checked so a bad filter names itself here rather than in the child. */
function seccompHex(bpf: unknown): string {
  const known = typeof bpf === 'string' ? checkedFilters.get(bpf) : undefined;
  if (known) return known;
  if (typeof bpf !== 'string' || !/^(?:[0-9a-f]{16})+$/i.test(bpf)) {
    throw new Error('launch plan: seccomp.bpf must be hex, 16 digits (8 bytes) per sock_filter instruction');
  }
  if (bpf.length / 16 > MAX_BPF_INSNS) throw new Error(`launch plan: seccomp.bpf has ${bpf.length / 16} instructions, more than ${MAX_BPF_INSNS}`);
  if (checkedFilters.size >= 16) checkedFilters.clear();
  const hex = bpf.toLowerCase();
  checkedFilters.set(bpf, hex);
  return hex;
}

function limit(n: number): string {
  return n === Infinity || n < 0 ? '-1' : String(Math.floor(n));
}

export function serializePlan(plan: LaunchPlan, opts: SerializeOptions): string {
  const lines: string[] = [`berth-plan ${PLAN_VERSION}`];
  const put = (key: string, ...values: (string | number)[]) => lines.push(values.length ? `${key} ${values.map((v) => field(key, v)).join('\t')}` : key);

  put('state-dir', absolute('stateDir', opts.stateDir));
  if (plan.logPath) put('log', absolute('logPath', plan.logPath));
  if (plan.logRotation) {
    const { maxSize, maxFiles } = plan.logRotation;
    if (!(Number.isSafeInteger(maxSize) && maxSize > 0 && Number.isSafeInteger(maxFiles) && maxFiles > 0)) {
      throw new Error(`launch plan: logRotation needs a positive maxSize and maxFiles, got ${JSON.stringify(plan.logRotation)}`);
    }
    put('log-max-size', maxSize);
    put('log-max-files', maxFiles);
  }
  const joins = Object.entries(plan.joinNamespaces ?? {});
  if (joins.length) {
    for (const [type, path] of joins) {
      if (!NAMESPACES.has(type)) throw new Error(`launch plan: unknown namespace ${JSON.stringify(type)}`);
      put('join', type, absolute(`joinNamespaces.${type}`, path));
    }
  } else {
    for (const ns of new Set(plan.namespaces)) {
      if (!NAMESPACES.has(ns)) throw new Error(`launch plan: unknown namespace ${JSON.stringify(ns)}`);
      put('namespace', ns);
    }
  }
  // Entered by the monitor just before the clone; the other shared namespaces the runtime enters.
  if (plan.enterNamespaces?.pid) put('pid-namespace', absolute('enterNamespaces.pid', plan.enterNamespaces.pid));
  if (plan.rootfs) put('rootfs', absolute('rootfs', plan.rootfs));
  if (plan.readonlyRootfs) put('readonly-rootfs');
  for (const m of plan.mounts) {
    absolute('mount destination', m.destination);
    if (m.options.some((o) => o.includes(','))) throw new Error(`launch plan: mount ${m.destination}: an option contains a comma`);
    put('mount', m.destination, m.type, m.source, m.options.join(','));
  }
  for (const d of plan.devices ?? []) {
    put('device', absolute('device', d.path), d.type, d.major, d.minor, (d.fileMode & 0o7777).toString(8), d.uid, d.gid);
  }
  for (const l of plan.symlinks ?? []) put('symlink', l.target, absolute('symlink', l.path));
  for (const p of plan.maskedPaths) put('mask', absolute('masked path', p));
  for (const p of plan.readonlyPaths) put('readonly', absolute('read-only path', p));
  if (plan.hostname) put('hostname', plan.hostname);
  if (plan.loopbackUp) put('loopback-up');
  for (const r of plan.rlimits ?? []) {
    const name = r.type.toUpperCase().startsWith('RLIMIT_') ? r.type.toUpperCase() : `RLIMIT_${r.type.toUpperCase()}`;
    const resource = RLIMITS[name];
    if (resource === undefined) throw new Error(`launch plan: unknown rlimit ${JSON.stringify(r.type)}`);
    put('rlimit', resource, limit(r.soft), limit(r.hard));
  }
  put('caps', capabilityMask(plan.capabilities));
  if (plan.noNewPrivileges) put('no-new-privileges');
  if (plan.seccomp) put('seccomp', seccompHex(plan.seccomp.bpf));
  if (plan.oomCgroup) put('oom-cgroup', absolute('oomCgroup', plan.oomCgroup));
  if (plan.sessionKeyring) put('session-keyring', plan.sessionKeyring);

  const p = plan.process;
  if (!p.args.length) throw new Error('launch plan: process.args is empty (no command to run)');
  put('uid', p.uid);
  put('gid', p.gid);
  for (const g of p.additionalGids) put('group', g);
  put('cwd', absolute('process.cwd', p.cwd || '/'));
  for (const a of p.args) put('arg', a);
  for (const e of p.env) put('env', e);
  if (p.terminal) put('terminal');
  if (p.consoleSize) put('console-size', p.consoleSize.rows, p.consoleSize.cols);
  if (p.openStdin) put('stdin');
  if (p.stdinOnce) put('stdin-once');
  return lines.join('\n') + '\n';
}
