/**
 * A real berthd for integration tests: the compiled daemon (`dist/core/daemon/berthd.js`) started
 * as a child process on a temp root and socket, plus the real CLI (`dist/core/cli/main.js`) and
 * raw HTTP over the socket. Nothing is built here: test/helpers/global-setup.ts keeps dist/ current.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { promises as fs, readFileSync, readdirSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export const REPO_ROOT = path.resolve(__dirname, '..', '..');
export const BERTHD_JS = path.join(REPO_ROOT, 'dist', 'core', 'daemon', 'berthd.js');
export const CLI_JS = path.join(REPO_ROOT, 'dist', 'core', 'cli', 'main.js');

export interface StartDaemonOptions {
  /** State root; default `<tempdir>/root`. A root given here is not removed by stop(). */
  root?: string;
  /** Socket path; default `<tempdir>/berth.sock` (kept short: unix socket paths stop at 107 bytes). */
  socket?: string;
  /** Written to `<tempdir>/berth.config.json` and passed with --config. */
  config?: object;
  storageDriver?: string;
  /** Extra environment for berthd, and the default extra environment of cli(). */
  env?: Record<string, string>;
  /** Extra berthd arguments. */
  args?: string[];
  /** How long to wait for `/_ping` (default 20 s). */
  readyTimeoutMs?: number;
  /** A program that execs berthd (e.g. `['unshare', '--net', '--']`); it must keep berthd's pid. */
  wrapper?: string[];
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** The host bridge of a network as inspect shows it: named in its options, or br-<id12> as dockerd names them. */
export function bridgeOfRecord(net: { Id: string; Options?: Record<string, string> }): string {
  return net.Options?.['com.docker.network.bridge.name'] ?? `br-${net.Id.slice(0, 12)}`;
}

/** The result, or an error showing the command's output when it exited non-zero. */
export function expectOk(res: CliResult, what = 'berth'): CliResult {
  if (res.code !== 0) throw new Error(`${what} exited ${res.code}\nstdout: ${res.stdout}\nstderr: ${res.stderr}`);
  return res;
}

export interface ApiResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  /** The body parsed as JSON (undefined when it is not JSON). */
  json: any;
}

export interface ApiInit {
  method?: string;
  /** A string or Buffer is sent as is; anything else as JSON. */
  body?: unknown;
  headers?: Record<string, string>;
}

export interface RunningDaemon {
  root: string;
  socket: string;
  pid: number;
  /** The helper's own temp dir (config file, default root and socket, DOCKER_CONFIG). */
  dir: string;
  /** The environment berthd got on top of process.env (DOCKER_CONFIG included). */
  env: Record<string, string>;
  cli(args: string[], opts?: { input?: string; env?: Record<string, string>; timeoutMs?: number }): Promise<CliResult>;
  api(urlPath: string, init?: ApiInit): Promise<ApiResponse>;
  /** Force-remove every container (with its anonymous volumes), so nothing keeps running past a suite. */
  removeAllContainers(): Promise<void>;
  /** Signal berthd (SIGTERM by default; SIGKILL after 10 s), then unmount and remove the temp dir. */
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGKILL berthd and wait for it to die; the temp dir stays (restart on the same root, then stop()). */
  kill9(): Promise<void>;
  /** What berthd wrote to stdout and stderr so far. */
  logs(): string;
  /** Resolves when berthd exits. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Run a program to completion, collecting output; stdin gets `input` (or is closed). */
export function runProgram(program: string, args: string[], opts: { env?: Record<string, string>; input?: string; timeoutMs?: number } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(program, args, { env: { ...process.env, ...opts.env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${path.basename(program)} ${args.join(' ')} did not finish within ${opts.timeoutMs ?? 120_000} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, opts.timeoutMs ?? 120_000);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr });
    });
    child.stdin.end(opts.input ?? '');
  });
}

/** Run node (the one running the tests) on `args`. */
export function runNode(args: string[], opts: { env?: Record<string, string>; input?: string; timeoutMs?: number } = {}): Promise<CliResult> {
  return runProgram(process.execPath, args, opts);
}

/** Run the berth CLI against a socket (also usable with no daemon at all). */
export function runCli(socket: string, args: string[], opts: { env?: Record<string, string>; input?: string; timeoutMs?: number } = {}): Promise<CliResult> {
  return runNode([CLI_JS, '-H', `unix://${socket}`, ...args], opts);
}

/** Run berthd to completion (for start-up failures: it must exit by itself within the timeout). */
export function runBerthd(args: string[], opts: { env?: Record<string, string>; timeoutMs?: number } = {}): Promise<CliResult> {
  return runNode([BERTHD_JS, ...args], { timeoutMs: 20_000, ...opts });
}

/** HTTP over a unix socket; the whole body is read. */
export function apiRequest(socket: string, urlPath: string, init: ApiInit = {}): Promise<ApiResponse> {
  let body: Buffer | undefined;
  const headers: Record<string, string> = { ...init.headers };
  if (typeof init.body === 'string' || Buffer.isBuffer(init.body)) body = Buffer.from(init.body);
  else if (init.body !== undefined) {
    body = Buffer.from(JSON.stringify(init.body));
    headers['Content-Type'] ??= 'application/json';
  }
  if (body) headers['Content-Length'] = String(body.length);
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath: socket, path: urlPath, method: init.method ?? 'GET', headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: unknown;
        try {
          json = text ? JSON.parse(text) : undefined;
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text, json });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** A raw HTTP exchange on a fresh connection; resolves with the socket once `until` matches. */
export function rawConnect(socketPath: string, text: string, until: RegExp, timeoutMs = 10_000): Promise<{ sock: net.Socket; seen: string }> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(socketPath);
    let seen = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`no ${until} within ${timeoutMs} ms; got ${JSON.stringify(seen.slice(0, 300))}`));
    }, timeoutMs);
    sock.on('data', (c) => {
      seen += c.toString('latin1');
      if (until.test(seen)) {
        clearTimeout(timer);
        sock.removeAllListeners('data');
        resolve({ sock, seen });
      }
    });
    sock.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    sock.write(text);
  });
}

/** Open file descriptors of a process. */
export function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** Wait until a process's fd count settles at or below `limit` (closed sockets take a moment). */
export async function fdsSettle(pid: number, limit: number, timeoutMs = 15_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let n = fdCount(pid);
  while (n > limit && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 200));
    n = fdCount(pid);
  }
  return n;
}

/** Mount points at or below `dir`, deepest first (from /proc/self/mountinfo, octal escapes decoded). */
/**
 * The end of a suite's daemon: remove every container, stop berthd, and return the mounts still
 * under its root (there must be none).
 */
export async function removeAllAndStop(daemon: RunningDaemon): Promise<string[]> {
  await daemon.removeAllContainers();
  await daemon.stop();
  return mountsUnder(daemon.root);
}

export function mountsUnder(dir: string): string[] {
  let text: string;
  try {
    text = readFileSync('/proc/self/mountinfo', 'utf8');
  } catch {
    return [];
  }
  const prefix = dir.endsWith('/') ? dir : dir + '/';
  const points = text
    .split('\n')
    .filter(Boolean)
    .map((line) => line.split(' ')[4].replace(/\\([0-7]{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8))))
    .filter((p) => p === dir || p.startsWith(prefix));
  return [...new Set(points)].sort((a, b) => b.length - a.length);
}

/** Lazily unmount everything at or below `dir`, deepest first. */
export function unmountUnder(dir: string): void {
  for (const point of mountsUnder(dir)) {
    try {
      execFileSync('umount', ['-l', point], { stdio: 'ignore' });
    } catch {
      /* already gone with its parent */
    }
  }
}

export async function startDaemon(opts: StartDaemonOptions = {}): Promise<RunningDaemon> {
  // Short prefix under /tmp: the socket path must stay well under 108 bytes.
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'bd-'));
  const root = opts.root ?? path.join(dir, 'root');
  const socket = opts.socket ?? path.join(dir, 'berth.sock');
  // Each daemon gets its own Docker config dir, so tests never read the host's ~/.docker.
  const env: Record<string, string> = { DOCKER_CONFIG: path.join(dir, 'docker-config'), ...opts.env };
  const args = ['--root', root, '--socket', socket];
  if (opts.config) {
    const configFile = path.join(dir, 'berth.config.json');
    await fs.writeFile(configFile, JSON.stringify(opts.config, null, 2));
    args.push('--config', configFile);
  }
  if (opts.storageDriver) args.push('--storage-driver', opts.storageDriver);
  args.push(...(opts.args ?? []));

  let output = '';
  // Through its shebang, with the node flags berthd is meant to run with.
  const command = [...(opts.wrapper ?? []), BERTHD_JS, ...args];
  const child: ChildProcess = spawn(command[0], command.slice(1), {
    // cwd = the temp dir, so cosmiconfig's search finds no stray berth.config.* of the checkout.
    cwd: dir,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.on('data', (c) => (output += c));
  child.stderr!.on('data', (c) => (output += c));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  let dead = false;
  void exited.then(() => (dead = true));

  const removeDir = async () => {
    unmountUnder(dir);
    if (!opts.root) unmountUnder(root);
    await fs.rm(dir, { recursive: true, force: true });
  };

  const deadline = Date.now() + (opts.readyTimeoutMs ?? 20_000);
  for (;;) {
    if (dead) {
      await removeDir();
      throw new Error(`berthd exited before answering /_ping (args: ${args.join(' ')}):\n${output}`);
    }
    try {
      const res = await apiRequest(socket, '/_ping');
      if (res.status === 200) break;
    } catch {
      /* not listening yet */
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      await exited;
      await removeDir();
      throw new Error(`berthd did not answer /_ping on ${socket} in time:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }

  let stopped: Promise<{ code: number | null; signal: NodeJS.Signals | null }> | undefined;
  return {
    root,
    socket,
    pid: child.pid!,
    dir,
    env,
    exited,
    logs: () => output,
    cli: (cliArgs, cliOpts = {}) => runCli(socket, cliArgs, { ...cliOpts, env: { ...env, ...cliOpts.env } }),
    api: (urlPath, init) => apiRequest(socket, urlPath, init),
    async removeAllContainers() {
      const list = await apiRequest(socket, '/containers/json?all=1');
      for (const c of (list.json as { Id: string }[] | undefined) ?? []) {
        await apiRequest(socket, `/containers/${c.Id}?force=1&v=1`, { method: 'DELETE' });
      }
    },
    async kill9() {
      if (!dead) child.kill('SIGKILL');
      await exited;
    },
    stop(signal: NodeJS.Signals = 'SIGTERM') {
      stopped ??= (async () => {
        if (!dead) {
          child.kill(signal);
          const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
          await exited;
          clearTimeout(timer);
        }
        const result = await exited;
        await removeDir();
        return result;
      })();
      return stopped;
    },
  };
}
