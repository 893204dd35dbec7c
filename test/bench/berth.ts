/**
 * berthd for the bench: the compiled daemon on a temp root and socket, its CLI and its API.
 */
import { spawn } from 'node:child_process';
import { accessSync, constants, promises as fs, readFileSync } from 'node:fs';
import path from 'node:path';
import { apiRequest, type ApiInit, type ApiResponse } from '../helpers/daemon';
import { BERTHD_JS, CLI_JS, type CmdResult, pidAlive, removeTree, runCmd, sleep, trackedPids, waitGone } from './lib';

/**
 * The CLI as users run it: the `berth` bin (dist/core/cli/main.js) executed through its own
 * shebang, which starts node without NODE_EXTRA_CA_CERTS; `node main.js` only if it is not executable.
 */
export const CLI_COMMAND: string[] = (() => {
  try {
    accessSync(CLI_JS, constants.X_OK);
    return readFileSync(CLI_JS, 'utf8').startsWith('#!') ? [CLI_JS] : [process.execPath, CLI_JS];
  } catch {
    return [process.execPath, CLI_JS];
  }
})();

export interface Berthd {
  pid: number;
  root: string;
  socket: string;
  cli(args: string[], timeoutMs?: number): Promise<CmdResult>;
  api(urlPath: string, init?: ApiInit): Promise<ApiResponse>;
  /** SIGTERM (SIGKILL after 10 s), then unmount and remove its directory. */
  stop(): Promise<void>;
  logs(): string;
}

/** Start berthd in a fresh directory `dir` (root `dir/root`, socket `dir/s`); resolves once /_ping answers. */
export async function startBerthd(dir: string, opts: { storageDriver?: string } = {}): Promise<Berthd> {
  await fs.mkdir(dir, { recursive: true });
  const root = path.join(dir, 'root');
  const socket = path.join(dir, 's');
  const env = { ...process.env, DOCKER_CONFIG: path.join(dir, 'docker-config') };
  const args = ['--root', root, '--socket', socket];
  if (opts.storageDriver) args.push('--storage-driver', opts.storageDriver);
  let output = '';
  // cwd = its own dir, so no berth.config.* of the checkout is picked up.
  // Through its shebang, as a user runs it (its node flags included).
  const child = spawn(BERTHD_JS, args, { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.on('data', (c) => (output += c));
  child.stderr.on('data', (c) => (output += c));
  trackedPids.add(child.pid!);
  let exited = false;
  const exitP = new Promise<void>((resolve) => child.once('exit', () => ((exited = true), resolve())));
  const stop = async () => {
    if (!exited) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exitP;
      clearTimeout(timer);
    }
    await removeTree(dir);
  };
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (exited) {
      await removeTree(dir);
      throw new Error(`berthd exited at start: ${output.trim().split('\n').slice(-5).join(' | ')}`);
    }
    const ok = await apiRequest(socket, '/_ping').then(
      (r) => r.status === 200,
      () => false,
    );
    if (ok) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`berthd did not answer /_ping within 20 s: ${output.trim().split('\n').slice(-5).join(' | ')}`);
    }
    await sleep(25);
  }
  return {
    pid: child.pid!,
    root,
    socket,
    cli: (cliArgs, timeoutMs) => runCmd(CLI_COMMAND[0], [...CLI_COMMAND.slice(1), '-H', `unix://${socket}`, ...cliArgs], { env, timeoutMs }),
    api: (urlPath, init) => apiRequest(socket, urlPath, init),
    stop,
    logs: () => output,
  };
}

/** An API answer that must have one of `ok` statuses; otherwise an error quoting the daemon. */
export function expectStatus(res: ApiResponse, what: string, ...ok: number[]): ApiResponse {
  if (!ok.includes(res.status)) throw new Error(`${what}: HTTP ${res.status} ${res.body.slice(0, 300)}`);
  return res;
}

/**
 * create + start + wait of `cmd` in `image` through a Docker-shaped API (berthd, or dockerd with
 * prefix `/v1.41`); returns the exit code and the container id (not removed).
 */
export async function apiRunOnce(api: (p: string, i?: ApiInit) => Promise<ApiResponse>, image: string, cmd: string[], prefix = ''): Promise<{ id: string; exitCode: number }> {
  const created = expectStatus(await api(`${prefix}/containers/create`, { method: 'POST', body: { Image: image, Cmd: cmd, HostConfig: { NetworkMode: 'none' } } }), 'create', 201);
  const id = created.json.Id as string;
  expectStatus(await api(`${prefix}/containers/${id}/start`, { method: 'POST' }), 'start', 204);
  const waited = expectStatus(await api(`${prefix}/containers/${id}/wait`, { method: 'POST' }), 'wait', 200);
  return { id, exitCode: waited.json?.StatusCode ?? -1 };
}

export async function apiRemove(api: (p: string, i?: ApiInit) => Promise<ApiResponse>, id: string, prefix = ''): Promise<void> {
  expectStatus(await api(`${prefix}/containers/${id}?force=1`, { method: 'DELETE' }), `remove ${id}`, 204, 404);
}

export { pidAlive, waitGone };
