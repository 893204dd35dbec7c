import * as fs from 'node:fs';
import * as path from 'node:path';
import type { CommandContext } from '../main';
import { UsageError } from '../main';
import { type Flags, checkArgCount, parse, parseBytes, parseFlags, parseTimestamp, registryHost } from '../args';
import { ApiError, type Client } from '../client';
import { registryAuthHeader } from '../credentials';
import { ProgressRenderer } from '../render';
import { CONTAINER_HEADERS, CONTAINER_TABLE, containerContext } from '../formatters';
import { Format } from '../template';
import { demux, hijack } from '../stream';
import { parsePublish } from './networks';
import { parseMountFlag, parseTmpfsFlag } from './volumes';
import { forEachName as forEach } from '../render';

/** Flags of `run`/`create`, one a line (docker's names, letters and help). */
const RUN_FLAGS: Flags = {
  'add-host': { type: 'string', multiple: true, help: 'Add a custom host-to-IP mapping (host:ip)' },
  'blkio-weight': { type: 'string', help: 'Block IO (relative weight), between 10 and 1000, or 0 to disable' },
  'cap-add': { type: 'string', multiple: true, help: 'Add Linux capabilities' },
  'cap-drop': { type: 'string', multiple: true, help: 'Drop Linux capabilities' },
  'cpu-period': { type: 'string', help: 'Limit CPU CFS (Completely Fair Scheduler) period' },
  'cpu-quota': { type: 'string', help: 'Limit CPU CFS (Completely Fair Scheduler) quota' },
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

type RunOpts = Record<string, string | boolean | string[] | undefined>;

const EXEC_FLAGS: Flags = {
  detach: { type: 'boolean', short: 'd', help: 'Detached mode: run command in the background' },
  env: { type: 'string', short: 'e', multiple: true, help: 'Set environment variables' },
  'env-file': { type: 'string', multiple: true, help: 'Read in a file of environment variables' },
  interactive: { type: 'boolean', short: 'i', help: 'Keep STDIN open even if not attached' },
  privileged: { type: 'boolean', help: 'Give extended privileges to the command' },
  tty: { type: 'boolean', short: 't', help: 'Allocate a pseudo-TTY' },
  user: { type: 'string', short: 'u', help: 'Username or UID (format: <name|uid>[:<group|gid>])' },
  workdir: { type: 'string', short: 'w', help: 'Working directory inside the container' },
};

/**
 * A run/create failure docker reports as `docker: MESSAGE.` and `See 'docker run --help'.`, exit
 * 125 (its checks of flag combinations, and the daemon's refusals of the create).
 */
class RunError extends Error {}

function parseRunArgs(argv: string[], usage: string): { opts: RunOpts; image: string; cmd: string[] } {
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
function restartPolicy(spec: string | undefined): { Name: string; MaximumRetryCount: number } | undefined {
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
function parseUlimit(spec: string): { Name: string; Soft: number; Hard: number } {
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
function parseDevice(spec: string): { PathOnHost: string; PathInContainer: string; CgroupPermissions: string } {
  const parts = spec.split(':');
  const isMode = (s: string | undefined) => !!s && /^[rwm]{1,3}$/.test(s);
  if (parts.length > 3 || !parts[0] || (parts.length === 3 && !isMode(parts[2]))) throw badFlag('device', spec, `bad format for path: ${spec}`);
  const [host, second, third] = parts;
  const mode = third ?? (isMode(second) ? second : 'rwm');
  const inContainer = second !== undefined && !(parts.length === 2 && isMode(second)) ? second : host;
  return { PathOnHost: host, PathInContainer: inContainer, CgroupPermissions: mode };
}

/** --label-file lines, then --label flags (later ones win, as docker reads them). */
function labelsFrom(opts: RunOpts): Record<string, string> {
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
function healthcheck(opts: RunOpts): Record<string, unknown> | undefined {
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

function envFrom(opts: RunOpts): string[] {
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

function createBody(opts: RunOpts, image: string, cmd: string[]) {
  const interactive = !!opts.interactive;
  const list = (k: string) => (opts[k] as string[] | undefined) ?? [];
  const binds = list('volume').map((v) => {
    const [src] = v.split(':');
    return src.startsWith('.') ? path.resolve(src) + v.slice(src.length) : v;
  });
  return {
    Image: image,
    Cmd: cmd.length ? cmd : undefined,
    Entrypoint: typeof opts.entrypoint === 'string' ? (opts.entrypoint ? [opts.entrypoint] : []) : undefined,
    Env: envFrom(opts),
    WorkingDir: (opts.workdir as string) ?? '',
    User: (opts.user as string) ?? '',
    Hostname: (opts.hostname as string) ?? '',
    Tty: !!opts.tty,
    OpenStdin: interactive,
    StdinOnce: interactive,
    AttachStdin: interactive,
    AttachStdout: !opts.detach,
    AttachStderr: !opts.detach,
    Labels: labelsFrom(opts),
    StopSignal: opts['stop-signal'] as string | undefined,
    StopTimeout: opts['stop-timeout'] !== undefined ? Number(opts['stop-timeout']) : undefined,
    Healthcheck: healthcheck(opts),
    MacAddress: opts['mac-address'] as string | undefined,
    ...exposedAndEndpoints(opts),
    HostConfig: {
      Binds: binds,
      NetworkMode: (opts.network as string) ?? 'default',
      ...networkAndMounts(opts),
      LogConfig: logConfig(opts),
      Privileged: !!opts.privileged,
      CapAdd: list('cap-add'),
      CapDrop: list('cap-drop'),
      ReadonlyRootfs: !!opts['read-only'],
      AutoRemove: !!opts.rm,
      Init: opts.init ? true : null,
      SecurityOpt: list('security-opt').map(securityOpt),
      RestartPolicy: restartPolicy(opts.restart as string | undefined) ?? { Name: 'no', MaximumRetryCount: 0 },
      ExtraHosts: opts['add-host'] ? list('add-host') : undefined,
      Dns: list('dns'),
      DnsSearch: list('dns-search'),
      DnsOptions: list('dns-option'),
      GroupAdd: opts['group-add'] ? list('group-add') : undefined,
      PidMode: (opts.pid as string) ?? '',
      VolumesFrom: opts['volumes-from'] ? list('volumes-from') : undefined,
      ShmSize: opts['shm-size'] ? parseBytes(opts['shm-size'] as string) : undefined,
      ...resources(opts),
    },
  };
}

/**
 * `seccomp=FILE` becomes `seccomp=<the file's JSON, compacted>`, as the docker CLI sends it; the
 * daemon never reads client paths. unconfined and builtin are names, not files.
 */
function securityOpt(opt: string): string {
  const m = /^seccomp[=:](.*)$/s.exec(opt);
  if (!m || m[1] === 'unconfined' || m[1] === 'builtin') return opt;
  let text: string;
  try {
    text = fs.readFileSync(m[1], 'utf8');
  } catch (err) {
    throw new UsageError(`--security-opt: opening seccomp profile (${m[1]}) failed: ${(err as Error).message}`);
  }
  try {
    return `seccomp=${JSON.stringify(JSON.parse(text))}`;
  } catch (err) {
    throw new UsageError(`--security-opt: seccomp profile ${m[1]} is not valid JSON: ${(err as Error).message}`);
  }
}

/** --log-driver and --log-opt KEY=VALUE as HostConfig.LogConfig; no driver means berthd's default. */
function logConfig(opts: RunOpts): { Type: string; Config: Record<string, string> } {
  const config: Record<string, string> = {};
  for (const opt of (opts['log-opt'] as string[]) ?? []) {
    const eq = opt.indexOf('=');
    if (eq <= 0) throw new UsageError(`invalid --log-opt ${JSON.stringify(opt)}: expected KEY=VALUE`);
    config[opt.slice(0, eq)] = opt.slice(eq + 1);
  }
  return { Type: (opts['log-driver'] as string) ?? '', Config: config };
}

/** -p/-P, --mount and --tmpfs as HostConfig fields (Docker's names). */
function networkAndMounts(opts: RunOpts): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const publish = ((opts.publish as string[]) ?? []).map(parsePublish);
  if (publish.length) {
    const bindings: Record<string, { HostIp: string; HostPort: string }[]> = {};
    for (const p of publish) (bindings[p.key] ??= []).push(p.binding);
    out.PortBindings = bindings;
  }
  if (opts['publish-all']) out.PublishAllPorts = true;
  if (opts.mount) out.Mounts = (opts.mount as string[]).map(parseMountFlag);
  if (opts.tmpfs) out.Tmpfs = Object.fromEntries((opts.tmpfs as string[]).map(parseTmpfsFlag));
  return out;
}

/** --expose and published ports as Config.ExposedPorts; --network-alias/--ip as NetworkingConfig. */
function exposedAndEndpoints(opts: RunOpts): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const exposed = [
    ...((opts.expose as string[]) ?? []).map((e) => (e.includes('/') ? e : `${e}/tcp`)),
    ...((opts.publish as string[]) ?? []).map((p) => parsePublish(p).key),
  ];
  if (exposed.length) out.ExposedPorts = Object.fromEntries(exposed.map((e) => [e, {}]));
  const aliases = (opts['network-alias'] as string[]) ?? [];
  if (aliases.length || opts.ip) {
    const network = (opts.network as string) ?? 'default';
    out.NetworkingConfig = { EndpointsConfig: { [network]: { Aliases: aliases, IPAMConfig: opts.ip ? { IPv4Address: opts.ip } : undefined } } };
  }
  return out;
}

/** Resource flags as HostConfig fields (Docker's names and units). */
function resources(opts: RunOpts): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const str = (k: string) => opts[k] as string | undefined;
  if (str('memory')) out.Memory = parseBytes(str('memory')!);
  if (str('memory-swap')) out.MemorySwap = str('memory-swap') === '-1' ? -1 : parseBytes(str('memory-swap')!);
  if (str('memory-reservation')) out.MemoryReservation = parseBytes(str('memory-reservation')!);
  if (str('cpus')) out.NanoCpus = Math.round(Number(str('cpus')) * 1e9);
  if (str('cpu-shares')) out.CpuShares = Number(str('cpu-shares'));
  if (str('cpu-quota')) out.CpuQuota = Number(str('cpu-quota'));
  if (str('cpu-period')) out.CpuPeriod = Number(str('cpu-period'));
  if (str('cpuset-cpus')) out.CpusetCpus = str('cpuset-cpus')!;
  if (str('pids-limit')) out.PidsLimit = Number(str('pids-limit'));
  if (opts.ulimit) out.Ulimits = (opts.ulimit as string[]).map(parseUlimit);
  if (opts.device) out.Devices = (opts.device as string[]).map(parseDevice);
  if (str('blkio-weight')) out.BlkioWeight = Number(str('blkio-weight'));
  return out;
}

async function pullImage(client: Client, image: string, err: NodeJS.WriteStream, platform?: string): Promise<void> {
  const at = image.lastIndexOf('@');
  const colon = image.lastIndexOf(':');
  const hasTag = at < 0 && colon > image.lastIndexOf('/');
  const [fromImage, tag] = at > 0 ? [image.slice(0, at), image.slice(at + 1)] : hasTag ? [image.slice(0, colon), image.slice(colon + 1)] : [image, 'latest'];
  const renderer = new ProgressRenderer(err);
  await client.stream('/images/create', { method: 'POST', query: { fromImage, tag, platform }, headers: registryAuthHeader(registryHost(image)) }, (m) => renderer.handle(m));
  if (renderer.error) throw new ApiError(500, renderer.error);
}

/** Create, pulling the image first when it is missing (docker's behaviour). */
async function createContainer(client: Client, opts: RunOpts, image: string, cmd: string[], err: NodeJS.WriteStream): Promise<string> {
  const body = createBody(opts, image, cmd);
  const create = () => client.json<{ Id: string }>('/containers/create', { method: 'POST', query: { name: opts.name as string | undefined }, body });
  if (opts.pull === 'always') await pullImage(client, image, err, opts.platform as string | undefined);
  try {
    return (await create()).Id;
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 404 && /No such image/.test(e.message)) || opts.pull === 'never') throw e;
    err.write(`Unable to find image '${image}' locally\n`);
    await pullImage(client, image, err, opts.platform as string | undefined);
    return (await create()).Id;
  }
}

export async function create({ client, argv, out, err }: CommandContext): Promise<number> {
  return reportingRunErrors('create', err, async () => {
    const { opts, image, cmd } = parseRunArgs(argv, 'berth create [OPTIONS] IMAGE [COMMAND] [ARG...]');
    out.write((await createContainer(client, opts, image, cmd, err)) + '\n');
    return 0;
  });
}

export async function run({ client, argv, out, err }: CommandContext): Promise<number> {
  return reportingRunErrors('run', err, async () => {
    const { opts, image, cmd } = parseRunArgs(argv, 'berth run [OPTIONS] IMAGE [COMMAND] [ARG...]');
    // A terminal's input never ends: piped stdin would reach EOF and leave the process waiting (docker refuses too).
    if (opts.tty && opts.interactive && !opts.detach && !process.stdin.isTTY) throw new Error('the input device is not a TTY');
    const id = await createContainer(client, opts, image, cmd, err);
    if (opts.detach) {
      try {
        await client.request(`/containers/${id}/start`, { method: 'POST' });
      } catch (e) {
        throw e instanceof ApiError ? new StartError(e.status, e.message, e.reason) : e;
      }
      out.write(id + '\n');
      return 0;
    }
    return attachAndStart(client, id, { tty: !!opts.tty, stdin: !!opts.interactive, autoRemove: !!opts.rm, start: true });
  });
}

/**
 * docker run/create report their failures as `docker: MESSAGE.` plus the help hint and exit 125,
 * or 126/127 when the process could not be run; berth does the same in its own name.
 */
async function reportingRunErrors(command: string, err: NodeJS.WriteStream, fn: () => Promise<number>): Promise<number> {
  const report = (message: string) => err.write(`berth: ${message}${message.endsWith('.') ? '' : '.'}\nSee 'berth ${command} --help'.\n`);
  try {
    return await fn();
  } catch (e) {
    if (e instanceof StartError) {
      report(`Error response from daemon: ${e.message}`);
      return startFailureCode(e);
    }
    if (e instanceof ApiError) report(`Error response from daemon: ${e.message}`);
    else if (e instanceof RunError) report(e.message);
    else throw e;
    return 125;
  }
}

/** The start of a created container failed (as opposed to the create or the attach). */
class StartError extends ApiError {}

/** docker run's exit codes for a process that never ran, from the daemon's reason: 127 not found, 126 not runnable, else 125. */
function startFailureCode(err: ApiError): number {
  return err.reason === 'command-not-found' ? 127 : err.reason === 'command-not-executable' ? 126 : 125;
}

/** The `docker run` sequence: attach, wait (registered first), start, relay until exit. */
async function attachAndStart(client: Client, id: string, o: { tty: boolean; stdin: boolean; autoRemove: boolean; start: boolean }): Promise<number> {
  // Attach and wait are independent; both must be registered before the start, so send them together.
  const [socket, waitRes] = await Promise.all([
    hijack(client, `/containers/${id}/attach`, { stream: 1, stdin: o.stdin ? 1 : undefined, stdout: 1, stderr: 1 }),
    client.request(`/containers/${id}/wait`, { method: 'POST', query: { condition: o.autoRemove ? 'removed' : 'next-exit' } }),
  ]);
  const waitBody = (async () => {
    const chunks: Buffer[] = [];
    for await (const c of waitRes) chunks.push(c);
    return JSON.parse(Buffer.concat(chunks).toString() || '{}') as { StatusCode: number; Error?: { Message: string } };
  })();
  // process.stdin is touched only when used: opening it keeps a handle that delays exit.
  const stdin = o.stdin ? process.stdin : undefined;
  const rawMode = !!(o.tty && stdin?.isTTY);
  const resize = () => {
    if (process.stdout.isTTY) void client.request(`/containers/${id}/resize`, { method: 'POST', query: { h: process.stdout.rows, w: process.stdout.columns } }).catch(() => undefined);
  };
  // Signals go to the container (docker's sig-proxy); a third one ends the CLI whatever the container does.
  let signals = 0;
  const forward = (signal: string) => {
    if (++signals >= 3) {
      process.stderr.write(`got ${signals} SIGTERM/SIGINTs, forcefully exiting\n`);
      process.exit(1);
    }
    void client.request(`/containers/${id}/kill`, { method: 'POST', query: { signal } }).catch(() => undefined);
  };
  const onSigint = () => forward('SIGINT');
  const onSigterm = () => forward('SIGTERM');
  if (!rawMode) {
    process.on('SIGINT', onSigint);
    process.on('SIGTERM', onSigterm);
  }
  // Read the output from now on: a process that exits at once may end the stream (and close the
  // socket) while the start request is still in flight, and a stream nobody listens to then
  // leaves nothing to keep the CLI alive, so it would exit 0 without the output or the status.
  const output = o.tty
    ? new Promise<void>((r) => { socket.pipe(process.stdout, { end: false }); socket.on('close', r); socket.on('end', r); })
    : demux(socket, process.stdout, process.stderr);
  try {
    if (o.start) {
      try {
        await client.request(`/containers/${id}/start`, { method: 'POST' });
      } catch (e) {
        // Nothing will run: stop waiting (with --rm, berthd has removed the container already).
        waitRes.destroy();
        void waitBody.catch(() => undefined);
        throw e instanceof ApiError ? new StartError(e.status, e.message, e.reason) : e;
      }
    }
    if (rawMode) stdin!.setRawMode(true);
    if (o.tty) {
      resize();
      process.stdout.on('resize', resize);
    }
    if (stdin) {
      stdin.pipe(socket);
      stdin.on('end', () => socket.end());
    }
    await output;
    const result = await waitBody;
    if (result.Error?.Message) process.stderr.write(`berth: ${result.Error.Message}\n`);
    return result.StatusCode;
  } finally {
    if (rawMode) stdin!.setRawMode(false);
    stdin?.unpipe(socket);
    stdin?.pause();
    process.off('SIGINT', onSigint);
    process.off('SIGTERM', onSigterm);
    process.stdout.off('resize', resize);
    socket.destroy();
  }
}

export async function start({ client, argv, out }: CommandContext): Promise<number> {
  const { values, positionals } = parse(argv, { attach: { type: 'boolean', short: 'a', help: 'Attach STDOUT/STDERR and forward signals' }, interactive: { type: 'boolean', short: 'i', help: "Attach container's STDIN" } }, 'berth start [OPTIONS] CONTAINER [CONTAINER...]', { min: 1 });
  if (values.attach || values.interactive) {
    const info = await client.json(`/containers/${encodeURIComponent(positionals[0])}/json`);
    return attachAndStart(client, info.Id, { tty: !!info.Config.Tty, stdin: !!values.interactive && !!info.Config.OpenStdin, autoRemove: !!info.HostConfig.AutoRemove, start: true });
  }
  return forEach(positionals, out, (c) => client.request(`/containers/${encodeURIComponent(c)}/start`, { method: 'POST' }));
}

export async function stop({ client, argv, out }: CommandContext): Promise<number> {
  const { values, positionals } = parse(argv, { time: { type: 'string', short: 't', help: 'Seconds to wait for stop before killing it' }, signal: { type: 'string', short: 's', help: 'Signal to send to the container' } }, 'berth stop [OPTIONS] CONTAINER [CONTAINER...]', { min: 1 });
  return forEach(positionals, out, (c) => client.request(`/containers/${encodeURIComponent(c)}/stop`, { method: 'POST', query: { t: values.time, signal: values.signal } }));
}

export async function restart({ client, argv, out }: CommandContext): Promise<number> {
  const { values, positionals } = parse(argv, { time: { type: 'string', short: 't', help: 'Seconds to wait for stop before killing the container' } }, 'berth restart [OPTIONS] CONTAINER [CONTAINER...]', { min: 1 });
  return forEach(positionals, out, (c) => client.request(`/containers/${encodeURIComponent(c)}/restart`, { method: 'POST', query: { t: values.time } }));
}

export async function kill({ client, argv, out }: CommandContext): Promise<number> {
  const { values, positionals } = parse(argv, { signal: { type: 'string', short: 's', help: 'Signal to send to the container' } }, 'berth kill [OPTIONS] CONTAINER [CONTAINER...]', { min: 1 });
  return forEach(positionals, out, (c) => client.request(`/containers/${encodeURIComponent(c)}/kill`, { method: 'POST', query: { signal: values.signal } }));
}

export async function rm({ client, argv, out }: CommandContext): Promise<number> {
  const { values, positionals } = parse(argv, { force: { type: 'boolean', short: 'f', help: 'Force the removal of a running container (uses SIGKILL)' }, volumes: { type: 'boolean', short: 'v', help: 'Remove anonymous volumes associated with the container' } }, 'berth rm [OPTIONS] CONTAINER [CONTAINER...]', { min: 1 });
  return forEach(positionals, out, (c) => client.request(`/containers/${encodeURIComponent(c)}`, { method: 'DELETE', query: { force: values.force, v: values.volumes } }));
}

export async function rename({ client, argv }: CommandContext): Promise<void> {
  const { positionals } = parse(argv, {}, 'berth rename CONTAINER NEW_NAME', { min: 2, max: 2 });
  await client.request(`/containers/${encodeURIComponent(positionals[0])}/rename`, { method: 'POST', query: { name: positionals[1] } });
}

export async function wait({ client, argv, out }: CommandContext): Promise<number> {
  const { positionals } = parse(argv, {}, 'berth wait CONTAINER [CONTAINER...]', { min: 1 });
  // Like docker wait: the codes are printed, the command itself succeeds (scripts read the output).
  for (const c of positionals) {
    const r = await client.json(`/containers/${encodeURIComponent(c)}/wait`, { method: 'POST' });
    out.write(`${r.StatusCode}\n`);
  }
  return 0;
}

export async function ps({ client, argv, out }: CommandContext): Promise<void> {
  const { values } = parse(argv, {
    all: { type: 'boolean', short: 'a', help: 'Show all containers (default shows just running)' },
    filter: { type: 'string', short: 'f', multiple: true, help: 'Filter output based on conditions provided' },
    format: { type: 'string', help: 'Pretty-print containers using a Go template' },
    last: { type: 'string', short: 'n', help: 'Show n last created containers (includes all states)', default: '-1' },
    latest: { type: 'boolean', short: 'l', help: 'Show the latest created container (includes all states)' },
    'no-trunc': { type: 'boolean', help: "Don't truncate output" },
    quiet: { type: 'boolean', short: 'q', help: 'Only display container IDs' },
    size: { type: 'boolean', short: 's', help: 'Display total file sizes' },
  }, 'berth ps [OPTIONS]', { max: 0 });
  // docker: -q and -s shape the default table only; a format of one's own is taken as written.
  let format = values.format ?? 'table';
  if (format === 'table') format = values.quiet ? '{{.ID}}' : values.size ? `${CONTAINER_TABLE}\t{{.Size}}` : CONTAINER_TABLE;
  const template = new Format(format);
  const limit = values.latest ? 1 : values.last !== undefined ? Number(values.last) : undefined;
  const query = { all: values.all || (limit !== undefined && limit > 0), limit: limit !== undefined && limit > 0 ? limit : undefined, size: values.size || format.includes('.Size') || undefined, filters: filtersQuery(values.filter) };
  const list = await client.json<any[]>('/containers/json', { query });
  out.write(template.render(list.map((c) => containerContext(c, !values['no-trunc'])), CONTAINER_HEADERS));
}

/** `--filter k=v` flags as the `filters` query parameter (JSON of key -> values), as docker sends it. */
export function filtersQuery(flags: string[] | undefined): string | undefined {
  const filters: Record<string, Record<string, boolean>> = {};
  for (const f of flags ?? []) {
    const i = f.indexOf('=');
    if (i <= 0) throw new UsageError(`invalid argument "${f}" for "-f, --filter" flag: bad format of filter (expected name=value)`);
    (filters[f.slice(0, i).trim().toLowerCase()] ??= {})[f.slice(i + 1)] = true;
  }
  return Object.keys(filters).length ? JSON.stringify(filters) : undefined;
}

export async function logs({ client, argv, out }: CommandContext): Promise<void> {
  const { values, positionals } = parse(argv, { follow: { type: 'boolean', short: 'f', help: 'Follow log output' }, tail: { type: 'string', short: 'n', help: 'Number of lines to show from the end of the logs' }, timestamps: { type: 'boolean', short: 't', help: 'Show timestamps' }, since: { type: 'string', help: 'Show logs since timestamp (e.g. 2013-01-02T13:23:37Z) or relative (e.g. 42m for 42 minutes)' }, until: { type: 'string', help: 'Show logs before a timestamp (e.g. 2013-01-02T13:23:37Z) or relative (e.g. 42m for 42 minutes)' } }, 'berth logs [-f] [--tail N] [-t] CONTAINER', { min: 1, max: 1 });
  const info = await client.json(`/containers/${encodeURIComponent(positionals[0])}/json`);
  const res = await client.request(`/containers/${info.Id}/logs`, { query: { stdout: 1, stderr: 1, follow: values.follow, tail: values.tail ?? 'all', timestamps: values.timestamps, since: parseTimestamp(values.since), until: parseTimestamp(values.until) } });
  if (info.Config.Tty) {
    res.pipe(out);
    await new Promise((r) => res.on('end', r));
    return;
  }
  await demux(res, out, process.stderr);
}

export async function attach({ client, argv }: CommandContext): Promise<number> {
  const { values, positionals } = parse(argv, { 'no-stdin': { type: 'boolean', help: 'Do not attach STDIN' } }, 'berth attach [OPTIONS] CONTAINER', { min: 1, max: 1 });
  const info = await client.json(`/containers/${encodeURIComponent(positionals[0])}/json`);
  if (!info.State.Running) throw new ApiError(409, 'You cannot attach to a stopped container, start it first');
  return attachAndStart(client, info.Id, { tty: !!info.Config.Tty, stdin: !values['no-stdin'] && !!info.Config.OpenStdin, autoRemove: false, start: false });
}

export async function exportFs({ client, argv, out }: CommandContext): Promise<void> {
  const { values, positionals } = parse(argv, { output: { type: 'string', short: 'o', help: 'Write to a file, instead of STDOUT' } }, 'berth export [OPTIONS] CONTAINER', { min: 1, max: 1 });
  if (!values.output && out.isTTY) throw new UsageError('cowardly refusing to write a tar to a terminal: use -o FILE or redirect');
  const res = await client.request(`/containers/${encodeURIComponent(positionals[0])}/export`);
  const dest = values.output ? fs.createWriteStream(values.output) : out;
  await new Promise<void>((resolve, reject) => {
    res.pipe(dest);
    res.on('end', resolve);
    res.on('error', reject);
  });
}

export async function diff({ client, argv, out }: CommandContext): Promise<void> {
  const { positionals } = parse(argv, {}, 'berth diff CONTAINER', { min: 1, max: 1 });
  const changes = await client.json<{ Path: string; Kind: number }[]>(`/containers/${encodeURIComponent(positionals[0])}/changes`);
  out.write(changes.map((c) => `${'CAD'[c.Kind]} ${c.Path}\n`).join(''));
}

export async function exec({ client, argv, out }: CommandContext): Promise<number> {
  const usage = 'berth exec [OPTIONS] CONTAINER COMMAND [ARG...]';
  const { values, positionals } = parseFlags(argv, EXEC_FLAGS, usage, { interspersed: false });
  checkArgCount(positionals.length, usage, { min: 2 });
  const opts = values as RunOpts;
  const [container, ...cmd] = positionals;
  const tty = !!opts.tty;
  const interactive = !!opts.interactive;
  const env = envFrom(opts);
  // docker gives a terminal TERM=xterm unless the container's or the exec's environment sets TERM.
  if (tty) {
    const info = await client.json(`/containers/${encodeURIComponent(container)}/json`);
    if (![...(info.Config?.Env ?? []), ...env].some((e: string) => e.startsWith('TERM='))) env.unshift('TERM=xterm');
  }
  const { Id } = await client.json<{ Id: string }>(`/containers/${encodeURIComponent(container)}/exec`, {
    method: 'POST',
    body: { Cmd: cmd, Env: env, WorkingDir: opts.workdir ?? '', User: opts.user ?? '', Tty: tty, Privileged: !!opts.privileged, AttachStdin: interactive && !opts.detach, AttachStdout: !opts.detach, AttachStderr: !opts.detach },
  });
  if (opts.detach) {
    await client.request(`/exec/${Id}/start`, { method: 'POST', body: { Detach: true, Tty: tty } });
    return 0;
  }
  const socket = await hijack(client, `/exec/${Id}/start`, {}, { Detach: false, Tty: tty });
  const stdin = interactive ? process.stdin : undefined;
  const rawMode = !!(tty && stdin?.isTTY);
  try {
    if (rawMode) stdin!.setRawMode(true);
    if (tty && process.stdout.isTTY) void client.request(`/exec/${Id}/resize`, { method: 'POST', query: { h: process.stdout.rows, w: process.stdout.columns } }).catch(() => undefined);
    if (stdin) {
      stdin.pipe(socket);
      stdin.on('end', () => socket.end());
    }
    if (tty) await new Promise<void>((r) => { socket.pipe(out, { end: false }); socket.on('close', r); socket.on('end', r); });
    else await demux(socket, out, process.stderr);
  } finally {
    if (rawMode) stdin!.setRawMode(false);
    stdin?.unpipe(socket);
    stdin?.pause();
    socket.destroy();
  }
  const info = await client.json(`/exec/${Id}/json`);
  return info.ExitCode ?? 0;
}
