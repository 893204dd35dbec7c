/**
 * The HTTP server on berthd's Unix socket. Every request is routed by its unversioned path; a
 * handler that throws becomes Docker's error JSON; nothing a client sends can take the daemon down.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import type { Logger } from '../contracts/types';
import { NotFoundError } from '../contracts/errors';
import { API_VERSION, MAX_JSON_BODY, MIN_API_VERSION, type ApiRequest, Router, sendError, sendJson } from './router';

const VERSIONED = /^\/v(\d+\.\d+)(\/.*)$/;

export class ApiServer {
  readonly server: http.Server;
  private readonly sockets = new Set<import('node:net').Socket>();

  constructor(readonly router: Router, private readonly log: Logger) {
    this.server = http.createServer((req, res) => void this.handle(req, res));
    this.server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    // Hijacked connections (attach, exec) are handed to handlers through 'upgrade'.
    // Node leaves an upgrade request's body on the socket: split it from the stream that follows.
    this.server.on('upgrade', (req, socket, head) => {
      const length = Number(req.headers['content-length'] ?? 0);
      void readExactly(socket as import('node:net').Socket, head, Math.min(length, MAX_JSON_BODY)).then(({ body, rest }) => {
        Object.assign(req, { head: rest, upgradeBody: body });
        const res = new http.ServerResponse(req);
        res.assignSocket(socket as import('node:net').Socket);
        void this.handle(req, res);
      }, () => socket.destroy());
    });
    this.server.on('clientError', (_err, socket) => socket.destroy());
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
      const status = (err as { status?: number }).status ?? 500;
      if (status >= 500) this.log.error('request failed', { method, path: p, error: (err as Error).message });
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

/** The first `n` bytes of `head` + socket data, and whatever arrived after them. */
function readExactly(socket: import('node:net').Socket, head: Buffer, n: number): Promise<{ body: Buffer; rest: Buffer }> {
  if (head.length >= n) return Promise.resolve({ body: head.subarray(0, n), rest: head.subarray(n) });
  return new Promise((resolve, reject) => {
    let buf = head;
    const onData = (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      if (buf.length < n) return;
      socket.off('data', onData);
      socket.off('error', reject);
      socket.pause();
      resolve({ body: buf.subarray(0, n), rest: buf.subarray(n) });
    };
    socket.on('data', onData);
    socket.once('error', reject);
  });
}

export function compareVersions(a: string, b: string): number {
  const [a1, a2] = a.split('.').map(Number);
  const [b1, b2] = b.split('.').map(Number);
  return a1 - b1 || a2 - b2;
}
