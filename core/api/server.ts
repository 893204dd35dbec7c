/**
 * The HTTP server on berthd's Unix socket. Every request is routed by its unversioned path; a
 * handler that throws becomes Docker's error JSON; nothing a client sends can take the daemon down.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import * as path from 'node:path';
import type { Logger } from '../contracts/types';
import { InvalidArgumentError, NotFoundError } from '../contracts/errors';
import { API_VERSION, MIN_API_VERSION, type ApiRequest, Router, bodyBudgetExhausted, declaredJsonLength, httpStatus, jsonBudget, sendError, sendJson } from './router';

const VERSIONED = /^\/v(\d+\.\d+)(\/.*)$/;

/** How long berthd waits for a client that is still sending a request. */
export interface ApiTimeouts {
  /** For the request line and headers (Node's headersTimeout). */
  headersMs: number;
  /** For the next byte of a request body that has not fully arrived (upgrade requests too). */
  bodyIdleMs: number;
}

export const DEFAULT_API_TIMEOUTS: ApiTimeouts = { headersMs: 60_000, bodyIdleMs: 60_000 };

/** BERTH_API_HEADERS_TIMEOUT_MS and BERTH_API_BODY_IDLE_TIMEOUT_MS override the defaults. */
export function apiTimeoutsFromEnv(env: NodeJS.ProcessEnv = process.env): ApiTimeouts {
  const read = (name: string, fallback: number): number => {
    const raw = env[name];
    if (raw === undefined || raw === '') return fallback;
    if (!/^\d+$/.test(raw) || Number(raw) < 1) throw new InvalidArgumentError(`${name}: expected a positive number of milliseconds, got ${JSON.stringify(raw)}`);
    return Number(raw);
  };
  return {
    headersMs: read('BERTH_API_HEADERS_TIMEOUT_MS', DEFAULT_API_TIMEOUTS.headersMs),
    bodyIdleMs: read('BERTH_API_BODY_IDLE_TIMEOUT_MS', DEFAULT_API_TIMEOUTS.bodyIdleMs),
  };
}

export class ApiServer {
  readonly server: http.Server;
  private readonly sockets = new Set<Socket>();
  /** The request each connection is serving, for the idle check. */
  private readonly serving = new WeakMap<Socket, http.IncomingMessage>();

  constructor(
    readonly router: Router,
    private readonly log: Logger,
    timeouts: ApiTimeouts = apiTimeoutsFromEnv(),
  ) {
    this.server = http.createServer(
      {
        headersTimeout: timeouts.headersMs,
        // No limit on a whole request: loads and build contexts may take long; an idle body is cut instead.
        requestTimeout: 0,
        connectionsCheckingInterval: Math.min(30_000, Math.ceil(timeouts.headersMs / 2)),
      },
      (req, res) => {
        this.serving.set(req.socket, req);
        res.once('finish', () => this.serving.delete(req.socket));
        void this.handle(req, res);
      },
    );
    this.server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    // A connection quiet for bodyIdleMs is dropped while its request is still arriving (or before
    // one starts); once a request is in, quiet streams (events, logs -f, attach) live on.
    this.server.setTimeout(timeouts.bodyIdleMs, (socket: Socket) => {
      const req = this.serving.get(socket);
      if (!req || !req.complete) socket.destroy();
    });
    // Hijacked connections (attach, exec) are handed to handlers through 'upgrade'.
    // Node leaves an upgrade request's body on the socket: split it from the stream that follows.
    this.server.on('upgrade', (req: http.IncomingMessage, socket: Socket, head: Buffer) => void this.upgrade(req, socket, head, timeouts.bodyIdleMs));
    this.server.on('clientError', (_err, socket) => socket.destroy());
  }

  private async upgrade(req: http.IncomingMessage, socket: Socket, head: Buffer, idleMs: number): Promise<void> {
    const res = new http.ServerResponse(req);
    res.assignSocket(socket);
    // A response that does not take the connection over ends it: nothing else may follow on it.
    res.once('finish', () => socket.end(() => socket.destroy()));
    let length: number;
    try {
      length = declaredJsonLength(req.headers);
      if (!jsonBudget.take(length)) throw bodyBudgetExhausted();
    } catch (err) {
      sendError(res, err);
      return;
    }
    try {
      const { body, rest } = await readExactly(socket, head, length, idleMs);
      Object.assign(req, { head: rest, upgradeBody: body });
      await this.handle(req, res);
    } catch {
      socket.destroy();
    } finally {
      jsonBudget.release(length);
    }
  }

  private async handle(raw: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(raw.url ?? '/', 'http://berth');
    let p = url.pathname;
    let version = API_VERSION;
    const m = VERSIONED.exec(p);
    if (m) {
      version = m[1];
      p = m[2];
      if (compareVersions(version, MIN_API_VERSION) < 0 || compareVersions(version, API_VERSION) > 0) {
        sendJson(res, 400, { message: `client version ${version} is not supported: berthd speaks ${MIN_API_VERSION} to ${API_VERSION}` });
        return;
      }
    }
    const method = raw.method ?? 'GET';
    const controller = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished) controller.abort();
    });
    const req: ApiRequest = { raw, method, path: p, params: {}, query: url.searchParams, version, signal: controller.signal };
    try {
      const found = this.router.match(method, p);
      if (!found) throw new NotFoundError(`page not found: ${method} ${p}`);
      if (found === 'method') {
        sendJson(res, 405, { message: `method ${method} not allowed on ${p}` });
        return;
      }
      req.params = found.params;
      await found.handler(req, res);
    } catch (err) {
      const status = httpStatus(err);
      if (status >= 500 && status !== 503) this.log.error('request failed', { method, path: p, error: (err as Error).message });
      // The rest of a refused body is not read, so the connection cannot carry another request.
      // It is half-closed once the answer is out (the client, perhaps still writing, reads the
      // answer and the end), and dropped by the idle check after keepAliveTimeout.
      if (!raw.complete && declaresBody(raw)) res.once('finish', () => raw.socket.end());
      sendError(res, err);
    }
  }

  /** Listen on a Unix socket (mode 0660), replacing a stale socket file. */
  async listen(socketPath: string): Promise<void> {
    await fs.promises.mkdir(path.dirname(socketPath), { recursive: true, mode: 0o755 });
    await fs.promises.rm(socketPath, { force: true });
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(socketPath, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    await fs.promises.chmod(socketPath, 0o660);
  }

  /** Listen on TCP (tests, benchmarks); loopback only. */
  async listenTcp(port = 0): Promise<number> {
    await new Promise<void>((resolve) => this.server.listen(port, '127.0.0.1', resolve));
    return (this.server.address() as AddressInfo).port;
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const s of this.sockets) s.destroy();
    await closed;
  }
}

/** Whether a body follows the headers (`complete` lags behind for one that has none). */
function declaresBody(req: http.IncomingMessage): boolean {
  return req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
}

/**
 * The first `n` bytes of `head` + socket data, and whatever arrived after them. Rejects when the
 * socket errs, closes, or sends nothing for `idleMs`.
 */
function readExactly(socket: Socket, head: Buffer, n: number, idleMs: number): Promise<{ body: Buffer; rest: Buffer }> {
  if (head.length >= n) return Promise.resolve({ body: head.subarray(0, n), rest: head.subarray(n) });
  return new Promise((resolve, reject) => {
    const chunks = [head];
    let size = head.length;
    const timer = setTimeout(() => fail(new Error('request body timed out')), idleMs);
    const cleanup = () => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('error', fail);
      socket.off('close', onClose);
    };
    const fail = (err: Error) => {
      cleanup();
      reject(err);
    };
    const onClose = () => fail(new Error('connection closed before the request body'));
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      size += chunk.length;
      if (size < n) {
        timer.refresh();
        return;
      }
      cleanup();
      socket.pause();
      const all = Buffer.concat(chunks, size);
      resolve({ body: all.subarray(0, n), rest: all.subarray(n) });
    };
    socket.on('data', onData);
    socket.once('error', fail);
    socket.once('close', onClose);
  });
}

export function compareVersions(a: string, b: string): number {
  const [a1, a2] = a.split('.').map(Number);
  const [b1, b2] = b.split('.').map(Number);
  return a1 - b1 || a2 - b2;
}
