/**
 * A real registry for tests: Debian's `docker-registry` (distribution 2.8) on a free loopback
 * port, with its own temp config and storage, optionally behind htpasswd (Basic) or token auth.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, promises as fs, readFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { TokenIssuer } from './token-issuer';

const execFileP = promisify(execFile);
const REGISTRY_BINARY = '/usr/bin/docker-registry';

export interface StartRegistryOptions {
  /** Require Basic auth with this one user (bcrypt htpasswd file made by `htpasswd -Bbn`). */
  htpasswd?: { user: string; password: string };
  /** Require bearer tokens from this issuer (see token-issuer.ts). */
  token?: TokenIssuer;
}

export interface RunningRegistry {
  /** `127.0.0.1:PORT`, the registry part of image references. */
  host: string;
  port: number;
  /** Where the registry stores blobs and repositories (`docker/registry/v2/...` below it). */
  dataDir: string;
  /** The registry's pid, so tests can assert it is gone after stop(). */
  pid: number;
  stop(): Promise<void>;
}

/** A free TCP port on 127.0.0.1 (bound then released; the caller retries if it is taken meanwhile). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

export async function startRegistry(opts: StartRegistryOptions = {}): Promise<RunningRegistry> {
  if (opts.htpasswd && opts.token) throw new Error('startRegistry: choose htpasswd or token auth, not both');
  const tempDir = await fs.mkdtemp(path.join(os.tmpdir(), 'berth-registry-'));
  try {
    const dataDir = path.join(tempDir, 'data');
    await fs.mkdir(dataDir);
    let auth: Record<string, unknown> | undefined;
    if (opts.htpasswd) {
      const { stdout } = await execFileP('htpasswd', ['-Bbn', opts.htpasswd.user, opts.htpasswd.password]);
      const htpasswdFile = path.join(tempDir, 'htpasswd');
      await fs.writeFile(htpasswdFile, stdout.trim() + '\n');
      auth = { htpasswd: { realm: 'berth-test', path: htpasswdFile } };
    } else if (opts.token) {
      auth = {
        token: {
          realm: opts.token.realm,
          service: opts.token.service,
          issuer: opts.token.issuer,
          rootcertbundle: opts.token.certFile,
        },
      };
    }
    // Ports picked by freePort() can be taken by someone else before the registry binds: retry.
    let lastError: unknown;
    for (let attempt = 0; attempt < 5; attempt++) {
      const port = await freePort();
      try {
        return await launch(tempDir, dataDir, port, auth);
      } catch (err) {
        lastError = err;
      }
    }
    throw lastError;
  } catch (err) {
    await fs.rm(tempDir, { recursive: true, force: true });
    throw err;
  }
}

async function launch(tempDir: string, dataDir: string, port: number, auth: Record<string, unknown> | undefined): Promise<RunningRegistry> {
  // YAML is a superset of JSON, so the config is written as JSON.
  const config = {
    version: 0.1,
    log: { level: 'warn', accesslog: { disabled: true } },
    storage: { filesystem: { rootdirectory: dataDir }, delete: { enabled: true } },
    http: { addr: `127.0.0.1:${port}`, secret: 'berth-test-secret' },
    ...(auth ? { auth } : {}),
  };
  const configFile = path.join(tempDir, `config-${port}.yml`);
  await fs.writeFile(configFile, JSON.stringify(config, null, 2));
  const logFile = path.join(tempDir, `registry-${port}.log`);
  const log = createWriteStream(logFile);
  await new Promise((resolve) => log.once('open', resolve));
  const child = spawn(REGISTRY_BINARY, ['serve', configFile], { stdio: ['ignore', log, log] });
  let exited = false;
  child.once('exit', () => {
    exited = true;
  });
  const stopChild = async () => {
    await killAndWait(child);
    log.close();
  };
  const host = `127.0.0.1:${port}`;
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (exited) {
      log.close();
      throw new Error(`docker-registry exited at start on ${host}: ${tailOf(logFile)}`);
    }
    if (await answers(host)) break;
    if (Date.now() > deadline) {
      await stopChild();
      throw new Error(`docker-registry did not answer GET /v2/ on ${host} within 15 s: ${tailOf(logFile)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    host,
    port,
    dataDir,
    pid: child.pid!,
    async stop() {
      await stopChild();
      await fs.rm(tempDir, { recursive: true, force: true });
    },
  };
}

/** True once the registry answers `GET /v2/` at all (200 or 401 both mean it is up). */
async function answers(host: string): Promise<boolean> {
  try {
    const res = await fetch(`http://${host}/v2/`, { signal: AbortSignal.timeout(1000) });
    await res.arrayBuffer();
    return res.status === 200 || res.status === 401;
  } catch {
    return false;
  }
}

/** SIGTERM, then SIGKILL after 3 s; resolves once the process has exited. */
export async function killAndWait(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
  await exited;
  clearTimeout(timer);
}

function tailOf(file: string): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-10).join('\n');
  } catch {
    return '(no log)';
  }
}

/** True while a process with this pid exists (for asserting cleanup). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export interface TestServer {
  host: string;
  port: number;
  /** Every request seen: method, url, headers. */
  requests: { method: string; url: string; headers: import('node:http').IncomingHttpHeaders }[];
  stop(): Promise<void>;
}

/**
 * A small node:http server on 127.0.0.1 for protocol tests (proxies, faulty registries).
 * stop() closes every connection, including keep-alive ones.
 */
export async function startTestServer(handler: import('node:http').RequestListener): Promise<TestServer> {
  const http = await import('node:http');
  const requests: TestServer['requests'] = [];
  const server = http.createServer((req, res) => {
    requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    handler(req, res);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as net.AddressInfo;
  return {
    host: `127.0.0.1:${port}`,
    port,
    requests,
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
