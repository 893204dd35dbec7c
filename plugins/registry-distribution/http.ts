/**
 * The HTTP layer: node:http / node:https rather than the built-in fetch, because
 * - insecure registries need HTTPS without certificate checks (`rejectUnauthorized: false`), which
 *   Node's fetch cannot do without the separate undici package;
 * - blobs come back as Node Readables with no web-stream conversion, and a socket idle timeout
 *   covers both slow headers and stalled bodies;
 * - redirects are followed by hand so Authorization never leaves the host that asked for it.
 */
import http from 'node:http';
import https from 'node:https';
import type { Readable } from 'node:stream';
import { RegistryError } from '../../core/plugin';

export interface RawRequest {
  method: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  url: URL;
  headers?: Record<string, string | number>;
  /** Request body, made fresh for each attempt. */
  body?: () => Readable | Buffer;
  signal?: AbortSignal;
  timeoutMs: number;
  /** Skip TLS certificate checks (insecure registries). */
  insecureTls?: boolean;
}

/** A connection-level failure (refused, reset, DNS, TLS, timeout): retryable. */
export class TransportError extends Error {
  constructor(
    message: string,
    readonly code: string | undefined,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'TransportError';
  }
}

export class HttpAgents {
  private readonly http = new http.Agent({ keepAlive: true, maxSockets: 32 });
  private readonly https = new https.Agent({ keepAlive: true, maxSockets: 32 });
  private readonly httpsInsecure = new https.Agent({ keepAlive: true, maxSockets: 32, rejectUnauthorized: false });

  for(url: URL, insecureTls?: boolean): http.Agent {
    if (url.protocol === 'http:') return this.http;
    return insecureTls ? this.httpsInsecure : this.https;
  }

  destroy(): void {
    this.http.destroy();
    this.https.destroy();
    this.httpsInsecure.destroy();
  }
}

function abortError(signal: AbortSignal): Error {
  const reason = signal.reason;
  if (reason instanceof Error) return reason;
  const err = new Error('the operation was aborted');
  err.name = 'AbortError';
  return err;
}

/** Send one request; resolves with the response once its headers arrive (the body is unread). */
export function sendOnce(agents: HttpAgents, req: RawRequest): Promise<http.IncomingMessage> {
  const { url, signal } = req;
  if (signal?.aborted) return Promise.reject(abortError(signal));
  return new Promise((resolve, reject) => {
    const mod = url.protocol === 'https:' ? https : http;
    let settled = false;
    const outgoing = mod.request(url, {
      method: req.method,
      headers: { 'User-Agent': 'berth/0.1', ...req.headers },
      agent: agents.for(url, req.insecureTls),
      timeout: req.timeoutMs,
    });
    const onAbort = () => {
      const err = abortError(signal!);
      outgoing.destroy(err);
      if (!settled) {
        settled = true;
        reject(err);
      }
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    outgoing.on('timeout', () => {
      outgoing.destroy(new TransportError(`timed out after ${req.timeoutMs} ms`, 'ETIMEDOUT'));
    });
    outgoing.on('error', (err: NodeJS.ErrnoException) => {
      signal?.removeEventListener('abort', onAbort);
      if (settled) return;
      settled = true;
      if (signal?.aborted) reject(abortError(signal));
      else if (err instanceof TransportError) reject(err);
      else reject(new TransportError(err.message, err.code, { cause: err }));
    });
    outgoing.on('response', (res) => {
      settled = true;
      // The abort listener stays until the body is done, so an abort also stops a streaming body.
      const cleanup = () => signal?.removeEventListener('abort', onAbort);
      res.once('end', cleanup);
      res.once('close', cleanup);
      // A stalled body surfaces as an error on the response stream.
      res.once('aborted', () => res.destroy(new TransportError('connection closed before the body ended', 'ECONNRESET')));
      resolve(res);
    });
    const body = req.body?.();
    if (body === undefined) outgoing.end();
    else if (Buffer.isBuffer(body)) outgoing.end(body);
    else {
      body.on('error', (err) => outgoing.destroy(err));
      // A failed request must not leave the body's source (a file, a blob) open.
      outgoing.on('close', () => {
        if (!body.readableEnded) body.destroy();
      });
      body.pipe(outgoing);
    }
  });
}

/** Read a small response body fully (error bodies, tokens); capped so a hostile server cannot exhaust memory. */
export async function readBody(res: http.IncomingMessage, limit = 1024 * 1024): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of res as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > limit) {
      res.destroy();
      break;
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** Throw the rest of a response away so its socket can be reused. */
export function discard(res: http.IncomingMessage): void {
  res.resume();
  res.on('error', () => {});
}

/** The registry's error text from a `{"errors":[{code,message,detail}]}` body, if any. */
export async function errorDetail(res: http.IncomingMessage): Promise<string> {
  try {
    const body = await readBody(res, 64 * 1024);
    const parsed = JSON.parse(body.toString('utf8')) as { errors?: { code?: string; message?: string }[] };
    const first = parsed.errors?.[0];
    if (first) return [first.code, first.message].filter(Boolean).join(': ');
  } catch {
    // not JSON: no detail
  }
  return '';
}

export function isRetryableStatus(status: number): boolean {
  return status === 429 || (status >= 500 && status !== 501 && status !== 505);
}

/** Delay before attempt `attempt + 1`: Retry-After when the server gave one (capped), else exponential. */
export function backoffMs(attempt: number, baseMs: number, retryAfter?: string | string[]): number {
  const header = Array.isArray(retryAfter) ? retryAfter[0] : retryAfter;
  if (header && /^\d+$/.test(header.trim())) return Math.min(Number(header) * 1000, 10_000);
  return Math.min(baseMs * 2 ** attempt, 10_000);
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.reject(abortError(signal));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortError(signal!));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export function unreachable(host: string, err: TransportError): RegistryError {
  return new RegistryError(`cannot reach registry ${host}: ${err.message}`, 502, { cause: err });
}
