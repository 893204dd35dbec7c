/**
 * The flags of `run` and `create`: their table (docker's names, letters and help), the checks
 * docker's CLI makes before it sends anything, and the parsers of the values that need one.
 */
import * as fs from 'node:fs';
import { UsageError } from '../main';
import { type Flags, checkArgCount, parseBytes, parseFlags } from '../args';

/** Flags of `run`/`create`, one a line (docker's names, letters and help). */
const RUN_FLAGS: Flags = {
  'add-host': { type: 'string', multiple: true, help: 'Add a custom host-to-IP mapping (host:ip)' },
  'blkio-weight': { type: 'string', help: 'Block IO (relative weight), between 10 and 1000, or 0 to disable' },
  'cap-add': { type: 'string', multiple: true, help: 'Add Linux capabilities' },
  'cap-drop': { type: 'string', multiple: true, help: 'Drop Linux capabilities' },
  'cpu-period': { type: 'string', help: 'Limit CPU CFS (Completely Fair Scheduler) period' },
  'cpu-quota': { type: 'string', help: 'Limit CPU CFS (Completely Fair Scheduler) quota' },
  'cpu-rt-period': { type: 'string', help: 'Limit CPU real-time period in microseconds' },
  'cpu-rt-runtime': { type: 'string', help: 'Limit CPU real-time runtime in microseconds' },
  'cpu-shares': { type: 'string', short: 'c', help: 'CPU shares (relative weight)' },
  cpus: { type: 'string', help: 'Number of CPUs' },
  'cpuset-cpus': { type: 'string', help: 'CPUs in which to allow execution (0-3, 0,1)' },
  detach: { type: 'boolean', short: 'd', help: 'Run container in background and print container ID' },
  device: { type: 'string', multiple: true, help: 'Add a host device to the container' },
  dns: { type: 'string', multiple: true, help: 'Set custom DNS servers' },
  'dns-option': { type: 'string', multiple: true, help: 'Set DNS options' },
  'dns-search': { type: 'string', multiple: true, help: 'Set custom DNS search domains' },
  entrypoint: { type: 'string', help: 'Overwrite the default ENTRYPOINT of the image' },
  env: { type: 'string', short: 'e', multiple: true, help: 'Set environment variables' },
  'env-file': { type: 'string', multiple: true, help: 'Read in a file of environment variables' },
  expose: { type: 'string', multiple: true, help: 'Expose a port or a range of ports' },
  'group-add': { type: 'string', multiple: true, help: 'Add additional groups to join' },
  'health-cmd': { type: 'string', help: 'Command to run to check health' },
  'health-interval': { type: 'string', help: 'Time between running the check (ms|s|m|h) (default 0s)' },
  'health-retries': { type: 'string', help: 'Consecutive failures needed to report unhealthy' },
  'health-start-period': { type: 'string', help: 'Start period for the container to initialize before starting health-retries countdown (ms|s|m|h) (default 0s)' },
  'health-timeout': { type: 'string', help: 'Maximum time to allow one check to run (ms|s|m|h) (default 0s)' },
  hostname: { type: 'string', short: 'h', help: 'Container host name' },
  init: { type: 'boolean', help: 'Run an init inside the container that forwards signals and reaps processes' },
  interactive: { type: 'boolean', short: 'i', help: 'Keep STDIN open even if not attached' },
  ip: { type: 'string', help: 'IPv4 address (e.g., 172.30.100.104)' },
  label: { type: 'string', short: 'l', multiple: true, help: 'Set meta data on a container' },
  'label-file': { type: 'string', multiple: true, help: 'Read in a line delimited file of labels' },
  'log-driver': { type: 'string', help: 'Logging driver for the container' },
  'log-opt': { type: 'string', multiple: true, help: 'Log driver options' },
  'mac-address': { type: 'string', help: 'Container MAC address (e.g., 92:d0:c6:0a:29:33)' },
  memory: { type: 'string', short: 'm', help: 'Memory limit' },
  'memory-reservation': { type: 'string', help: 'Memory soft limit' },
  'memory-swap': { type: 'string', help: "Swap limit equal to memory plus swap: '-1' to enable unlimited swap" },
  mount: { type: 'string', multiple: true, help: 'Attach a filesystem mount to the container' },
  name: { type: 'string', help: 'Assign a name to the container' },
  network: { type: 'string', help: 'Connect a container to a network' },
  'network-alias': { type: 'string', multiple: true, help: 'Add network-scoped alias for the container' },
  'no-healthcheck': { type: 'boolean', help: 'Disable any container-specified HEALTHCHECK' },
  pid: { type: 'string', help: 'PID namespace to use' },
  'pids-limit': { type: 'string', help: 'Tune container pids limit (set -1 for unlimited)' },
  platform: { type: 'string', help: 'Set platform if server is multi-platform capable' },
  privileged: { type: 'boolean', help: 'Give extended privileges to this container' },
  publish: { type: 'string', short: 'p', multiple: true, help: "Publish a container's port(s) to the host" },
  'publish-all': { type: 'boolean', short: 'P', help: 'Publish all exposed ports to random ports' },
  pull: { type: 'string', help: 'Pull image before running ("always"|"missing"|"never")', default: '"missing"' },
  quiet: { type: 'boolean', short: 'q', help: 'Suppress the pull output' },
  'read-only': { type: 'boolean', help: "Mount the container's root filesystem as read only" },
  restart: { type: 'string', help: 'Restart policy to apply when a container exits', default: '"no"' },
  rm: { type: 'boolean', help: 'Automatically remove the container when it exits' },
  'security-opt': { type: 'string', multiple: true, help: 'Security Options' },
  'shm-size': { type: 'string', help: 'Size of /dev/shm' },
  'stop-signal': { type: 'string', help: 'Signal to stop a container', default: '"SIGTERM"' },
  'stop-timeout': { type: 'string', help: 'Timeout (in seconds) to stop a container' },
  tmpfs: { type: 'string', multiple: true, help: 'Mount a tmpfs directory' },
  tty: { type: 'boolean', short: 't', help: 'Allocate a pseudo-TTY' },
  ulimit: { type: 'string', multiple: true, help: 'Ulimit options' },
  user: { type: 'string', short: 'u', help: 'Username or UID (format: <name|uid>[:<group|gid>])' },
  volume: { type: 'string', short: 'v', multiple: true, help: 'Bind mount a volume' },
  'volumes-from': { type: 'string', multiple: true, help: 'Mount volumes from the specified container(s)' },
  workdir: { type: 'string', short: 'w', help: 'Working directory inside the container' },
};

export type RunOpts = Record<string, string | boolean | string[] | undefined>;

/**
 * A run/create failure docker reports as `docker: MESSAGE.` and `See 'docker run --help'.`, exit
 * 125 (its checks of flag combinations, and the daemon's refusals of the create).
 */
export class RunError extends Error {}

export function parseRunArgs(argv: string[], usage: string): { opts: RunOpts; image: string; cmd: string[] } {
  const { values, positionals } = parseFlags(argv, RUN_FLAGS, usage, { interspersed: false });
  checkArgCount(positionals.length, usage, { min: 1 });
  const opts = values as RunOpts;
  validateRunOpts(opts);
  return { opts, image: positionals[0], cmd: positionals.slice(1) };
}

/** A flag's value refused as pflag words it: invalid argument "abc" for "--cpus" flag: ... */
function badFlag(flag: string, value: string, why: string): UsageError {
  const short = RUN_FLAGS[flag]?.short;
  return new UsageError(`invalid argument "${value}" for "${short ? `-${short}, ` : ''}--${flag}" flag: ${why}`);
}

/** The checks docker's CLI makes before it sends anything (its messages, exit 125). */
function validateRunOpts(opts: RunOpts): void {
  const cpus = opts.cpus as string | undefined;
  if (cpus !== undefined && !/^(\d+(\.\d*)?|\.\d+)$/.test(cpus.trim())) throw badFlag('cpus', cpus, `failed to parse ${cpus} as a rational number`);
  for (const e of (opts.env as string[]) ?? []) if (e.startsWith('=')) throw badFlag('env', e, `invalid environment variable: ${e}`);
  for (const h of (opts['add-host'] as string[]) ?? []) {
    const i = h.indexOf(':');
    if (i <= 0) throw badFlag('add-host', h, `bad format for add-host: "${h}"`);
    if (!isIP(h.slice(i + 1).replace(/^\[|\]$/g, ''))) throw badFlag('add-host', h, `invalid IP address in add-host: "${h.slice(i + 1)}"`);
  }
  for (const d of (opts.dns as string[]) ?? []) if (!isIP(d)) throw badFlag('dns', d, `ip address is not correctly formatted: ${d}`);
  for (const u of (opts.ulimit as string[]) ?? []) parseUlimit(u);
  for (const d of (opts.device as string[]) ?? []) parseDevice(d);
  for (const k of ['memory', 'shm-size', 'memory-reservation'] as const) {
    const v = opts[k] as string | undefined;
    if (v !== undefined && !/^\d+(\.\d+)?\s*[bkmgt]?i?b?$/i.test(v.trim())) throw badFlag(k, v, `invalid size: '${v}'`);
  }
  for (const k of ['health-interval', 'health-timeout', 'health-start-period'] as const) {
    const v = opts[k] as string | undefined;
    if (v !== undefined && parseGoDuration(v) === undefined) throw badFlag(k, v, `time: invalid duration "${v}"`);
  }
  const retries = opts['health-retries'] as string | undefined;
  if (retries !== undefined && !/^-?\d+$/.test(retries)) throw badFlag('health-retries', retries, `strconv.ParseInt: parsing "${retries}": invalid syntax`);
  const pid = opts.pid as string | undefined;
  if (pid !== undefined && pid !== '' && pid !== 'host' && !/^container:.+/.test(pid)) throw new RunError('--pid: invalid PID mode');
  if (opts['no-healthcheck'] && ['health-cmd', 'health-interval', 'health-timeout', 'health-retries', 'health-start-period'].some((k) => opts[k] !== undefined)) {
    throw new RunError('--no-healthcheck conflicts with --health-* options');
  }
  const restart = restartPolicy(opts.restart as string | undefined);
  if (opts.rm && restart && restart.Name !== 'no') throw new RunError('Conflicting options: --restart and --rm');
}

/** docker's ParseRestartPolicy plus the daemon's check of the name, both in docker's words. */
export function restartPolicy(spec: string | undefined): { Name: string; MaximumRetryCount: number } | undefined {
  if (spec === undefined || spec === '') return undefined;
  const parts = spec.split(':');
  if (parts.length > 2) throw new RunError('invalid restart policy format');
  if (parts.length === 2 && !/^-?\d+$/.test(parts[1])) throw new RunError('maximum retry count must be an integer');
  const policy = { Name: parts[0], MaximumRetryCount: Number(parts[1] ?? 0) };
  if (!['no', 'always', 'unless-stopped', 'on-failure'].includes(policy.Name)) throw new RunError(`invalid restart policy '${policy.Name}'`);
  if (policy.Name !== 'on-failure' && policy.MaximumRetryCount) throw new RunError(`maximum retry count cannot be used with restart policy '${policy.Name}'`);
  if (policy.MaximumRetryCount < 0) throw new RunError('maximum retry count cannot be negative');
  return policy;
}

function isIP(s: string): boolean {
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(s)) return s.split('.').every((o) => Number(o) <= 255);
  return /^[0-9a-fA-F:]+$/.test(s) && s.includes(':');
}

/** `--ulimit nofile=1024[:2048]` -> {Name, Soft, Hard} (go-units ParseUlimit). */
export function parseUlimit(spec: string): { Name: string; Soft: number; Hard: number } {
  const m = /^([a-z]+)=(-?\d+)(?::(-?\d+))?$/.exec(spec);
  if (!m) throw badFlag('ulimit', spec, `invalid ulimit argument: ${spec}`);
  const known = ['core', 'cpu', 'data', 'fsize', 'locks', 'memlock', 'msgqueue', 'nice', 'nofile', 'nproc', 'rss', 'rtprio', 'rttime', 'sigpending', 'stack'];
  if (!known.includes(m[1])) throw badFlag('ulimit', spec, `invalid ulimit type: ${m[1]}`);
  const soft = Number(m[2]);
  const hard = m[3] !== undefined ? Number(m[3]) : soft;
  if (soft > hard) throw badFlag('ulimit', spec, `ulimit soft limit must be less than or equal to hard limit: ${soft} > ${hard}`);
  return { Name: m[1], Soft: soft, Hard: hard };
}

/** Go's time.ParseDuration, in nanoseconds; undefined when it does not parse. */
function parseGoDuration(s: string): number | undefined {
  if (s === '0') return 0;
  const units: Record<string, number> = { ns: 1, us: 1e3, µs: 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };
  const re = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)/y;
  let total = 0;
  let i = /^[-+]/.test(s) ? 1 : 0;
  if (i >= s.length) return undefined;
  while (i < s.length) {
    re.lastIndex = i;
    const m = re.exec(s);
    if (!m) return undefined;
    total += Number(m[1]) * units[m[2]];
    i = re.lastIndex;
  }
  return Math.round(s.startsWith('-') ? -total : total);
}

/** `--device /dev/x[:/dev/y][:rwm]` -> a HostConfig.Devices entry (docker's parseDevice). */
export function parseDevice(spec: string): { PathOnHost: string; PathInContainer: string; CgroupPermissions: string } {
  const parts = spec.split(':');
  const isMode = (s: string | undefined) => !!s && /^[rwm]{1,3}$/.test(s);
  if (parts.length > 3 || !parts[0] || (parts.length === 3 && !isMode(parts[2]))) throw badFlag('device', spec, `bad format for path: ${spec}`);
  const [host, second, third] = parts;
  const mode = third ?? (isMode(second) ? second : 'rwm');
  const inContainer = second !== undefined && !(parts.length === 2 && isMode(second)) ? second : host;
  return { PathOnHost: host, PathInContainer: inContainer, CgroupPermissions: mode };
}

/** --label-file lines, then --label flags (later ones win, as docker reads them). */
export function labelsFrom(opts: RunOpts): Record<string, string> {
  const lines: string[] = [];
  for (const file of (opts['label-file'] as string[]) ?? []) {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (e) {
      throw new RunError(`open ${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file or directory' : (e as Error).message}`);
    }
    for (const line of text.split('\n')) if (line.trim() && !line.trimStart().startsWith('#')) lines.push(line.trim());
  }
  lines.push(...((opts.label as string[]) ?? []));
  return Object.fromEntries(lines.map((l) => [l.split('=')[0], l.split('=').slice(1).join('=')]));
}

/** The health flags as Config.Healthcheck (durations in nanoseconds), or NONE for --no-healthcheck. */
export function healthcheck(opts: RunOpts): Record<string, unknown> | undefined {
  if (opts['no-healthcheck']) return { Test: ['NONE'] };
  const keys = ['health-cmd', 'health-interval', 'health-timeout', 'health-retries', 'health-start-period'];
  if (!keys.some((k) => opts[k] !== undefined)) return undefined;
  const duration = (k: string) => {
    const ns = opts[k] !== undefined ? parseGoDuration(opts[k] as string)! : 0;
    if (ns < 0) throw new RunError(`--${k} cannot be negative`);
    return ns;
  };
  const retries = opts['health-retries'] !== undefined ? Number(opts['health-retries']) : 0;
  if (retries < 0) throw new RunError('--health-retries cannot be negative');
  const cmd = opts['health-cmd'] as string | undefined;
  return { Test: cmd ? ['CMD-SHELL', cmd] : undefined, Interval: duration('health-interval'), Timeout: duration('health-timeout'), StartPeriod: duration('health-start-period'), Retries: retries };
}

export function envFrom(opts: RunOpts): string[] {
  const env: string[] = [];
  for (const file of (opts['env-file'] as string[]) ?? []) {
    for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
      const t = line.trim();
      if (!t || t.startsWith('#')) continue;
      env.push(t.includes('=') ? t : `${t}=${process.env[t] ?? ''}`);
    }
  }
  for (const e of (opts.env as string[]) ?? []) env.push(e.includes('=') ? e : `${e}=${process.env[e] ?? ''}`);
  return env;
}

/** `-p [HOSTIP:][HOSTPORT:]CONTAINERPORT[/tcp|udp]` -> Docker's PortBindings entries. */
export function parsePublish(spec: string): { key: string; binding: { HostIp: string; HostPort: string } } {
  const m = /^(?:(?:(\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-fA-F:]+\]):)?(\d{0,5}):)?(\d{1,5})(?:\/(tcp|udp))?$/.exec(spec);
  if (!m) throw new UsageError(`invalid publish spec ${JSON.stringify(spec)}: expected [HOSTIP:][HOSTPORT:]CONTAINERPORT[/tcp|udp]`);
  const [, hostIp = '', hostPort = '', port, proto = 'tcp'] = m;
  if (Number(port) < 1 || Number(port) > 65535 || (hostPort && Number(hostPort) > 65535)) throw new UsageError(`invalid port in ${JSON.stringify(spec)}: ports run from 1 to 65535`);
  return { key: `${port}/${proto}`, binding: { HostIp: hostIp, HostPort: hostPort } };
}

/** `--mount type=volume|bind|tmpfs,source=,target=,readonly[,tmpfs-size=,tmpfs-mode=]` -> a HostConfig.Mounts entry. */
export function parseMountFlag(spec: string): Record<string, unknown> {
  const m: Record<string, any> = { Type: 'volume' };
  for (const field of spec.split(',')) {
    const eq = field.indexOf('=');
    const key = (eq < 0 ? field : field.slice(0, eq)).trim().toLowerCase();
    const value = eq < 0 ? undefined : field.slice(eq + 1);
    switch (key) {
      case 'type':
        m.Type = value;
        break;
      case 'source':
      case 'src':
        m.Source = value;
        break;
      case 'target':
      case 'destination':
      case 'dst':
        m.Target = value;
        break;
      case 'readonly':
      case 'ro':
        m.ReadOnly = value === undefined || value === 'true' || value === '1';
        break;
      case 'volume-nocopy':
        m.VolumeOptions = { NoCopy: value === undefined || value === 'true' };
        break;
      case 'bind-propagation':
        m.BindOptions = { Propagation: value };
        break;
      case 'tmpfs-size':
        m.TmpfsOptions = { ...(m.TmpfsOptions ?? {}), SizeBytes: parseBytes(value ?? '') };
        break;
      case 'tmpfs-mode':
        m.TmpfsOptions = { ...(m.TmpfsOptions ?? {}), Mode: parseInt(value ?? '', 8) };
        break;
      default:
        throw new UsageError(`invalid --mount field ${JSON.stringify(key)} in ${JSON.stringify(spec)} (type, source, target, readonly, volume-nocopy, bind-propagation, tmpfs-size, tmpfs-mode)`);
    }
  }
  if (!m.Target) throw new UsageError(`invalid --mount ${JSON.stringify(spec)}: target is required`);
  return m;
}

/** `--tmpfs /path[:opts]` -> [path, opts]. */
export function parseTmpfsFlag(spec: string): [string, string] {
  const i = spec.indexOf(':');
  return i < 0 ? [spec, ''] : [spec.slice(0, i), spec.slice(i + 1)];
}
