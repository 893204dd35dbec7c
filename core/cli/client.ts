/**
 * The CLI's API client: plain HTTP over berthd's Unix socket, nothing else loaded.
 */
import * as http from 'node:http';
import * as net from 'node:net';

export const API_PREFIX = '/v1.43';
export const DEFAULT_SOCKET = '/run/berth/berth.sock';

export class ApiError extends Error {
  /** `reason`: why a container's command could not start, when the daemon says (kind StartFailure). */
  constructor(
    readonly status: number,
    message: string,
    readonly reason?: string,
  ) {
    super(message);
  }
}

export class DaemonUnreachable extends Error {}

function isStream(v: unknown): v is NodeJS.ReadableStream {
  return typeof (v as NodeJS.ReadableStream | undefined)?.pipe === 'function';
}

export interface RequestOptions {
  method?: string;
  query?: Record<string, string | number | boolean | undefined>;
  /** JSON-encoded, unless it is a stream, which is sent as it is (chunked). */
  body?: unknown;
  headers?: Record<string, string>;
}

export class Client {
  constructor(readonly socketPath: string) {}

  /** Parse `-H unix:///path` / BERTH_HOST / DOCKER_HOST-style values. */
  static fromHost(host: string | undefined): Client {
    if (!host) return new Client(DEFAULT_SOCKET);
    if (host.startsWith('unix://')) return new Client(host.slice('unix://'.length));
    if (host.startsWith('/')) return new Client(host);
    throw new Error(`unsupported host "${host}": berth speaks to berthd over unix:///path/to/berth.sock`);
  }

  /**
   * http.request's options for one fresh connection to the socket. An own connection, not an
   * agent: the agent's first request compiles Node's IPv6 regex (~7 ms of a ~90 ms `berth run`).
   */
  connection(): Pick<http.RequestOptions, 'createConnection'> {
    return { createConnection: () => net.connect(this.socketPath) };
  }

  url(path: string, query?: RequestOptions['query']): string {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined && v !== false) q.set(k, String(v));
    const qs = q.toString();
    return API_PREFIX + path + (qs ? `?${qs}` : '');
  }

  /** Send a request and return the raw response (for streams). Non-2xx statuses throw ApiError. */
  request(path: string, opts: RequestOptions = {}): Promise<http.IncomingMessage> {
    const stream = isStream(opts.body) ? opts.body : undefined;
    const body = opts.body === undefined || stream ? undefined : Buffer.from(JSON.stringify(opts.body));
    return new Promise((resolve, reject) => {
      const req = http.request(
        {
          ...this.connection(),
          path: this.url(path, opts.query),
          method: opts.method ?? 'GET',
          headers: {
            ...(body ? { 'Content-Type': 'application/json', 'Content-Length': body.length } : {}),
            ...(stream ? { 'Transfer-Encoding': 'chunked' } : {}),
            ...opts.headers,
          },
        },
        (res) => {
          if ((res.statusCode ?? 500) < 400) return resolve(res);
          const chunks: Buffer[] = [];
          res.on('data', (c) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let message = text;
            let reason: string | undefined;
            try {
              const body = JSON.parse(text);
              message = body.message ?? text;
              if (body.kind === 'StartFailure') reason = body.reason;
            } catch {
              /* not JSON: keep the text */
            }
            reject(new ApiError(res.statusCode ?? 500, message || `HTTP ${res.statusCode}`, reason));
          });
        },
      );
      req.on('error', (err: NodeJS.ErrnoException) => {
        if (['ENOENT', 'ECONNREFUSED', 'EACCES'].includes(err.code ?? '')) {
          const why = err.code === 'EACCES' ? 'permission denied' : 'is berthd running?';
          reject(new DaemonUnreachable(`Cannot connect to berthd at unix://${this.socketPath}: ${why}`));
        } else reject(err);
      });
      if (stream) {
        stream.on('error', (err) => req.destroy(err));
        stream.pipe(req);
      } else req.end(body);
    });
  }

  async json<T = any>(path: string, opts: RequestOptions = {}): Promise<T> {
    const res = await this.request(path, opts);
    const chunks: Buffer[] = [];
    for await (const c of res) chunks.push(c);
    const text = Buffer.concat(chunks).toString('utf8');
    return (text ? JSON.parse(text) : undefined) as T;
  }

  /** Read a newline-delimited JSON stream, calling `onMessage` for each object. */
  async stream(path: string, opts: RequestOptions, onMessage: (msg: any) => void): Promise<void> {
    await readJsonLines(await this.request(path, opts), onMessage);
  }
}

/** Read a newline-delimited JSON stream (Docker's progress and build messages), one object at a time. */
export async function readJsonLines(res: AsyncIterable<Buffer>, onMessage: (msg: any) => void): Promise<void> {
  let buf = '';
  for await (const chunk of res) {
    buf += chunk.toString('utf8');
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (line) onMessage(JSON.parse(line));
    }
  }
  if (buf.trim()) onMessage(JSON.parse(buf));
}
