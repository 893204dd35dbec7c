/** The flags of `run`/`create` as the body of POST /containers/create (Docker's field names and units). */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { UsageError } from '../main';
import { parseBytes } from '../args';
import { envFrom, healthcheck, labelsFrom, parseDevice, parseMountFlag, parsePublish, parseTmpfsFlag, parseUlimit, restartPolicy, type RunOpts } from './run-flags';

export function createBody(opts: RunOpts, image: string, cmd: string[]) {
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
  const exposed = [...((opts.expose as string[]) ?? []).map((e) => (e.includes('/') ? e : `${e}/tcp`)), ...((opts.publish as string[]) ?? []).map((p) => parsePublish(p).key)];
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
  if (str('cpu-rt-period')) out.CpuRealtimePeriod = Number(str('cpu-rt-period'));
  if (str('cpu-rt-runtime')) out.CpuRealtimeRuntime = Number(str('cpu-rt-runtime'));
  if (str('cpuset-cpus')) out.CpusetCpus = str('cpuset-cpus')!;
  if (str('pids-limit')) out.PidsLimit = Number(str('pids-limit'));
  if (opts.ulimit) out.Ulimits = (opts.ulimit as string[]).map(parseUlimit);
  if (opts.device) out.Devices = (opts.device as string[]).map(parseDevice);
  if (str('blkio-weight')) out.BlkioWeight = Number(str('blkio-weight'));
  return out;
}
