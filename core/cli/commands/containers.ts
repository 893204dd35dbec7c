import * as fs from 'node:fs';
import * as path from 'node:path';
import type { CommandContext } from '../main';
import { UsageError } from '../main';
import { parse, parseBytes, registryHost } from '../args';
import { ApiError, type Client } from '../client';
import { registryAuthHeader } from '../credentials';
import { ProgressRenderer, ago, table, truncate } from '../render';
import { demux, hijack } from '../stream';
import { formatPorts, parsePublish } from './networks';
import { parseMountFlag, parseTmpfsFlag } from './volumes';
import { forEachName as forEach } from '../render';

/** Flags of `run`/`create`: name -> [takes a value, repeatable]. */
const RUN_FLAGS: Record<string, [boolean, boolean]> = {
  detach: [false, false], interactive: [false, false], tty: [false, false], rm: [false, false], name: [true, false], env: [true, true], 'env-file': [true, true],
  workdir: [true, false], user: [true, false], hostname: [true, false], entrypoint: [true, false], volume: [true, true], network: [true, false],
  privileged: [false, false], 'cap-add': [true, true], 'cap-drop': [true, true], 'read-only': [false, false], init: [false, false], label: [true, true],
  platform: [true, false], pull: [true, false], 'security-opt': [true, true], 'stop-signal': [true, false], 'stop-timeout': [true, false], restart: [true, false], quiet: [false, false],
  memory: [true, false], 'memory-swap': [true, false], 'memory-reservation': [true, false], cpus: [true, false], 'pids-limit': [true, false],
  'cpu-shares': [true, false], 'cpu-quota': [true, false], 'cpu-period': [true, false], 'cpuset-cpus': [true, false], 'blkio-weight': [true, false],
  publish: [true, true], 'publish-all': [false, false], expose: [true, true], 'network-alias': [true, true], ip: [true, false], mount: [true, true], tmpfs: [true, true],
  'log-driver': [true, false], 'log-opt': [true, true],
};
const SHORT: Record<string, string> = { d: 'detach', i: 'interactive', t: 'tty', e: 'env', w: 'workdir', u: 'user', h: 'hostname', v: 'volume', l: 'label', q: 'quiet', m: 'memory', p: 'publish', P: 'publish-all' };

type RunOpts = Record<string, string | boolean | string[]>;

const EXEC_FLAGS: Record<string, [boolean, boolean]> = {
  detach: [false, false], interactive: [false, false], tty: [false, false], env: [true, true], 'env-file': [true, true],
  workdir: [true, false], user: [true, false], privileged: [false, false],
};

export function parseRunArgs(argv: string[]): { opts: RunOpts; image: string; cmd: string[] } {
  const { opts, first, rest } = parseInterspersed(argv, RUN_FLAGS, 'berth run [OPTIONS] IMAGE [COMMAND] [ARG...]');
  return { opts, image: first, cmd: rest };
}

/** Docker-style parsing: flags up to the first operand (image, container), then the command untouched. */
function parseInterspersed(argv: string[], FLAGS: Record<string, [boolean, boolean]>, usage: string): { opts: RunOpts; first: string; rest: string[] } {
  const opts: RunOpts = {};
  const set = (name: string, value: string | boolean) => {
    const spec = FLAGS[name];
    if (!spec) throw new UsageError(`unknown flag: --${name}`);
    if (spec[1]) ((opts[name] as string[]) ??= []).push(value as string);
    else opts[name] = value;
  };
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') {
      i++;
      break;
    }
    if (!a.startsWith('-') || a === '-') break;
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = eq > 0 ? a.slice(2, eq) : a.slice(2);
      const spec = FLAGS[name];
      if (!spec) throw new UsageError(`unknown flag: ${a}`);
      if (!spec[0]) set(name, eq > 0 ? a.slice(eq + 1) !== 'false' : true);
      else if (eq > 0) set(name, a.slice(eq + 1));
      else if (i + 1 < argv.length) set(name, argv[++i]);
      else throw new UsageError(`flag needs an argument: ${a}`);
      continue;
    }
    const letters = a.slice(1);
    for (let j = 0; j < letters.length; j++) {
      const name = SHORT[letters[j]];
      if (!name || !FLAGS[name]) throw new UsageError(`unknown shorthand flag: '${letters[j]}' in ${a}`);
      if (!FLAGS[name][0]) set(name, true);
      else {
        const rest = letters.slice(j + 1);
        if (rest) set(name, rest.startsWith('=') ? rest.slice(1) : rest);
        else if (i + 1 < argv.length) set(name, argv[++i]);
        else throw new UsageError(`flag needs an argument: '${letters[j]}' in ${a}`);
        break;
      }
    }
  }
  if (i >= argv.length) throw new UsageError(`requires at least 1 argument\nUsage: ${usage}`);
  return { opts, first: argv[i], rest: argv.slice(i + 1) };
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
  const restart = typeof opts.restart === 'string' ? opts.restart.split(':') : undefined;
  const labels = Object.fromEntries(((opts.label as string[]) ?? []).map((l) => [l.split('=')[0], l.split('=').slice(1).join('=')]));
  const binds = ((opts.volume as string[]) ?? []).map((v) => {
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
    Labels: labels,
    StopSignal: opts['stop-signal'] as string | undefined,
    StopTimeout: opts['stop-timeout'] !== undefined ? Number(opts['stop-timeout']) : undefined,
    ...exposedAndEndpoints(opts),
    HostConfig: {
      Binds: binds,
      NetworkMode: (opts.network as string) ?? 'default',
      ...networkAndMounts(opts),
      LogConfig: logConfig(opts),
      Privileged: !!opts.privileged,
      CapAdd: opts['cap-add'] ?? [],
      CapDrop: opts['cap-drop'] ?? [],
      ReadonlyRootfs: !!opts['read-only'],
      AutoRemove: !!opts.rm,
      Init: opts.init ? true : null,
      SecurityOpt: ((opts['security-opt'] as string[] | undefined) ?? []).map(securityOpt),
      RestartPolicy: restart ? { Name: restart[0], MaximumRetryCount: Number(restart[1] ?? 0) } : { Name: 'no' },
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
function resources(opts: RunOpts): Record<string, number | string> {
  const out: Record<string, number | string> = {};
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

export async function create({ client, argv, out, err }: CommandContext): Promise<void> {
  const { opts, image, cmd } = parseRunArgs(argv);
  out.write((await createContainer(client, opts, image, cmd, err)) + '\n');
}

export async function run({ client, argv, out, err }: CommandContext): Promise<number> {
  const { opts, image, cmd } = parseRunArgs(argv);
  // A terminal's input never ends: piped stdin would reach EOF and leave the process waiting (docker refuses too).
  if (opts.tty && opts.interactive && !opts.detach && !process.stdin.isTTY) throw new Error('the input device is not a TTY');
  const id = await createContainer(client, opts, image, cmd, err);
  try {
    if (opts.detach) {
      try {
        await client.request(`/containers/${id}/start`, { method: 'POST' });
      } catch (e) {
        throw e instanceof ApiError ? new StartError(e.status, e.message) : e;
      }
      out.write(id + '\n');
      return 0;
    }
    return await attachAndStart(client, id, { tty: !!opts.tty, stdin: !!opts.interactive, autoRemove: !!opts.rm, start: true });
  } catch (e) {
    if (!(e instanceof StartError)) throw e;
    err.write(`berth: Error response from daemon: ${e.message}\n`);
    return startFailureCode(e.message);
  }
}

/** The start of a created container failed (as opposed to the create or the attach). */
class StartError extends ApiError {}

/** docker run's exit codes for a process that never ran: 127 not found, 126 not runnable, else 125. */
function startFailureCode(message: string): number {
  if (/executable file not found|no such file or directory/i.test(message)) return 127;
  if (/permission denied|is a directory/i.test(message)) return 126;
  return 125;
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
  const onSigint = () => void client.request(`/containers/${id}/kill`, { method: 'POST', query: { signal: 'SIGINT' } }).catch(() => undefined);
  const onSigterm = () => void client.request(`/containers/${id}/kill`, { method: 'POST', query: { signal: 'SIGTERM' } }).catch(() => undefined);
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
        throw e instanceof ApiError ? new StartError(e.status, e.message) : e;
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
  const { values, positionals } = parse(argv, { attach: { type: 'boolean', short: 'a' }, interactive: { type: 'boolean', short: 'i' } }, 'berth start [-a] [-i] CONTAINER [CONTAINER...]', { min: 1 });
  if (values.attach || values.interactive) {
    const info = await client.json(`/containers/${encodeURIComponent(positionals[0])}/json`);
    return attachAndStart(client, info.Id, { tty: !!info.Config.Tty, stdin: !!values.interactive && !!info.Config.OpenStdin, autoRemove: !!info.HostConfig.AutoRemove, start: true });
  }
  return forEach(positionals, out, (c) => client.request(`/containers/${encodeURIComponent(c)}/start`, { method: 'POST' }));
}

export async function stop({ client, argv, out }: CommandContext): Promise<number> {
  const { values, positionals } = parse(argv, { time: { type: 'string', short: 't' }, signal: { type: 'string', short: 's' } }, 'berth stop [-t SECONDS] CONTAINER [CONTAINER...]', { min: 1 });
  return forEach(positionals, out, (c) => client.request(`/containers/${encodeURIComponent(c)}/stop`, { method: 'POST', query: { t: values.time, signal: values.signal } }));
}

export async function restart({ client, argv, out }: CommandContext): Promise<number> {
  const { values, positionals } = parse(argv, { time: { type: 'string', short: 't' } }, 'berth restart [-t SECONDS] CONTAINER [CONTAINER...]', { min: 1 });
  return forEach(positionals, out, (c) => client.request(`/containers/${encodeURIComponent(c)}/restart`, { method: 'POST', query: { t: values.time } }));
}

export async function kill({ client, argv, out }: CommandContext): Promise<number> {
  const { values, positionals } = parse(argv, { signal: { type: 'string', short: 's' } }, 'berth kill [-s SIGNAL] CONTAINER [CONTAINER...]', { min: 1 });
  return forEach(positionals, out, (c) => client.request(`/containers/${encodeURIComponent(c)}/kill`, { method: 'POST', query: { signal: values.signal } }));
}

export async function rm({ client, argv, out }: CommandContext): Promise<number> {
  const { values, positionals } = parse(argv, { force: { type: 'boolean', short: 'f' }, volumes: { type: 'boolean', short: 'v' } }, 'berth rm [-f] CONTAINER [CONTAINER...]', { min: 1 });
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
  const { values } = parse(argv, { all: { type: 'boolean', short: 'a' }, quiet: { type: 'boolean', short: 'q' }, 'no-trunc': { type: 'boolean' }, filter: { type: 'string', short: 'f', multiple: true }, last: { type: 'string', short: 'n' }, latest: { type: 'boolean', short: 'l' } }, 'berth ps [-a] [-q] [--filter KEY=VALUE]', { max: 0 });
  const filters: Record<string, string[]> = {};
  for (const f of values.filter ?? []) {
    const i = f.indexOf('=');
    (filters[f.slice(0, i)] ??= []).push(f.slice(i + 1));
  }
  const limit = values.latest ? 1 : values.last ? Number(values.last) : undefined;
  const list = await client.json<any[]>('/containers/json', { query: { all: values.all || limit !== undefined, limit, filters: Object.keys(filters).length ? JSON.stringify(filters) : undefined } });
  const id = (s: string) => (values['no-trunc'] ? s : s.slice(0, 12));
  if (values.quiet) {
    out.write(list.map((c) => id(c.Id) + '\n').join(''));
    return;
  }
  out.write(
    table(
      ['CONTAINER ID', 'IMAGE', 'COMMAND', 'CREATED', 'STATUS', 'PORTS', 'NAMES'],
      list.map((c) => [id(c.Id), c.Image, JSON.stringify(values['no-trunc'] ? c.Command : truncate(c.Command, 20)), ago(c.Created), c.Status, formatPorts(c.Ports), c.Names.map((n: string) => n.replace(/^\//, '')).join(',')]),
    ),
  );
}

export async function logs({ client, argv, out }: CommandContext): Promise<void> {
  const { values, positionals } = parse(argv, { follow: { type: 'boolean', short: 'f' }, tail: { type: 'string', short: 'n' }, timestamps: { type: 'boolean', short: 't' }, since: { type: 'string' }, until: { type: 'string' } }, 'berth logs [-f] [--tail N] [-t] CONTAINER', { min: 1, max: 1 });
  const info = await client.json(`/containers/${encodeURIComponent(positionals[0])}/json`);
  const res = await client.request(`/containers/${info.Id}/logs`, { query: { stdout: 1, stderr: 1, follow: values.follow, tail: values.tail ?? 'all', timestamps: values.timestamps, since: toUnix(values.since), until: toUnix(values.until) } });
  if (info.Config.Tty) {
    res.pipe(out);
    await new Promise((r) => res.on('end', r));
    return;
  }
  await demux(res, out, process.stderr);
}

function toUnix(v: string | undefined): number | undefined {
  if (!v) return undefined;
  if (/^\d+(\.\d+)?$/.test(v)) return Number(v);
  const rel = /^(\d+)([smh])$/.exec(v);
  if (rel) return Math.floor(Date.now() / 1000) - Number(rel[1]) * { s: 1, m: 60, h: 3600 }[rel[2] as 's' | 'm' | 'h'];
  const t = Date.parse(v);
  if (Number.isNaN(t)) throw new UsageError(`invalid time "${v}"`);
  return Math.floor(t / 1000);
}

export async function attach({ client, argv }: CommandContext): Promise<number> {
  const { values, positionals } = parse(argv, { 'no-stdin': { type: 'boolean' } }, 'berth attach CONTAINER', { min: 1, max: 1 });
  const info = await client.json(`/containers/${encodeURIComponent(positionals[0])}/json`);
  if (!info.State.Running) throw new ApiError(409, 'You cannot attach to a stopped container, start it first');
  return attachAndStart(client, info.Id, { tty: !!info.Config.Tty, stdin: !values['no-stdin'] && !!info.Config.OpenStdin, autoRemove: false, start: false });
}

export async function exportFs({ client, argv, out }: CommandContext): Promise<void> {
  const { values, positionals } = parse(argv, { output: { type: 'string', short: 'o' } }, 'berth export [-o FILE] CONTAINER', { min: 1, max: 1 });
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
  const { opts, first: container, rest: cmd } = parseInterspersed(argv, EXEC_FLAGS, 'berth exec [OPTIONS] CONTAINER COMMAND [ARG...]');
  if (!cmd.length) throw new UsageError('requires at least 2 arguments\nUsage: berth exec [OPTIONS] CONTAINER COMMAND [ARG...]');
  const tty = !!opts.tty;
  const interactive = !!opts.interactive;
  const { Id } = await client.json<{ Id: string }>(`/containers/${encodeURIComponent(container)}/exec`, {
    method: 'POST',
    body: { Cmd: cmd, Env: envFrom(opts), WorkingDir: opts.workdir ?? '', User: opts.user ?? '', Tty: tty, Privileged: !!opts.privileged, AttachStdin: interactive && !opts.detach, AttachStdout: !opts.detach, AttachStderr: !opts.detach },
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
