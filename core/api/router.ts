/**
 * A small router for the Docker-shaped API: routes are regexes over the unversioned path
 * (`/v1.43/images/json` and `/images/json` reach the same handler), and every error becomes
 * Docker's `{"message": "..."}` with the error's status code (a StartFailure adds its kind and reason).
 */
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { BerthError, InvalidArgumentError, TooLargeError, UnavailableError, startFailureReason } from '../contracts/errors';

export const API_VERSION = '1.43';
export const MIN_API_VERSION = '1.24';
/** JSON request bodies above this are refused with 413 (Docker's create bodies are a few KB). */
export const MAX_JSON_BODY = 2 * 1024 * 1024;
/**
 * All JSON bodies being buffered at once share this many bytes; a body that would pass it is
 * refused with 503, so many clients with large bodies cannot grow the daemon without bound.
 * Real bodies are a few KB: thousands fit. (With 500 clients sending 4 MiB bodies at once, the
 * first socket reads of the refused ones cost more than this budget.)
 */
export const MAX_BUFFERED_JSON = 8 * 1024 * 1024;

/** Bytes of request bodies held in memory right now, against MAX_BUFFERED_JSON. */
export class BodyBudget {
  private used = 0;

  constructor(readonly limit: number) {}

  /** Take `n` bytes; false (nothing taken) when that would pass the limit. */
  take(n: number): boolean {
    if (this.used + n > this.limit) return false;
    this.used += n;
    return true;
  }

  release(n: number): void {
    this.used -= n;
  }
}

export const jsonBudget = new BodyBudget(MAX_BUFFERED_JSON);

export function bodyTooLarge(): BerthError {
  return new TooLargeError(`request body larger than the ${MAX_JSON_BODY / (1024 * 1024)} MiB limit (${MAX_JSON_BODY} bytes)`);
}

export function bodyBudgetExhausted(): BerthError {
  return new UnavailableError(`too many large request bodies in flight (${MAX_BUFFERED_JSON / (1024 * 1024)} MiB buffered): retry later`);
}

/** The declared Content-Length, refused (413) above MAX_JSON_BODY before any byte is read. */
export function declaredJsonLength(headers: IncomingHttpHeaders): number {
  const raw = headers['content-length'];
  if (raw === undefined) return 0;
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(n)) throw new InvalidArgumentError(`invalid Content-Length: ${JSON.stringify(raw)}`);
  if (n > MAX_JSON_BODY) throw bodyTooLarge();
  return n;
}

export interface ApiRequest {
  raw: IncomingMessage;
  method: string;
  path: string;
  params: Record<string, string>;
  query: URLSearchParams;
  /** API version from the path, or the newest. */
  version: string;
  /** Aborted when the client goes away. */
  signal: AbortSignal;
}

export type Handler = (req: ApiRequest, res: ServerResponse) => Promise<unknown> | unknown;

interface Route {
  method: string;
  pattern: RegExp;
  handler: Handler;
}

export class Router {
  private readonly routes: Route[] = [];

  add(method: string, pattern: string, handler: Handler): this {
    // `{name}` matches one segment; `{name*}` matches the rest (image names contain slashes).
    const re = pattern.replace(/\{(\w+)(\*?)\}/g, (_, n, star) => (star ? `(?<${n}>.+)` : `(?<${n}>[^/]+)`));
    this.routes.push({ method, pattern: new RegExp(`^${re}$`), handler });
    return this;
  }

  match(method: string, path: string): { handler: Handler; params: Record<string, string> } | 'method' | undefined {
    let pathMatched = false;
    for (const r of this.routes) {
      const m = r.pattern.exec(path);
      if (!m) continue;
      pathMatched = true;
      if (r.method === method || (method === 'HEAD' && r.method === 'GET')) {
        const params = Object.fromEntries(Object.entries(m.groups ?? {}).map(([k, v]) => [k, decodeParam(k, v)]));
        return { handler: r.handler, params };
      }
    }
    return pathMatched ? 'method' : undefined;
  }
}

/** A malformed %-escape in a path parameter is the client's error (400), not a crash (500). */
function decodeParam(name: string, value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    throw new InvalidArgumentError(`invalid escape in path parameter ${name}: ${value}`);
  }
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const data = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data) });
  res.end(data);
}

/**
 * The edge between error kinds and HTTP: an engine or plugin error answers with its kind's status
 * (HTTP_STATUS in core/contracts/errors.ts, or the status it relays); anything else is a 500.
 */
export function httpStatus(err: unknown): number {
  if (err instanceof BerthError) return err.status;
  // A plugin built against its own copy of berth throws its own copy of the classes.
  const e = err as { kind?: unknown; status?: unknown } | null;
  return typeof e?.kind === 'string' && typeof e.status === 'number' ? e.status : 500;
}

export function sendError(res: ServerResponse, err: unknown): void {
  const status = httpStatus(err);
  const message = err instanceof Error ? err.message : String(err);
  if (res.headersSent) {
    res.destroy();
    return;
  }
  sendJson(res, status, { message, ...startFailureDetail(err) });
}

/** berth's addition to Docker's error body: why a command could not start (the CLI picks docker run's exit code from it). */
function startFailureDetail(err: unknown): { kind?: 'StartFailure'; reason?: string } {
  const reason = startFailureReason(err);
  return reason ? { kind: 'StartFailure', reason } : {};
}

/**
 * Read and parse a JSON body: refused with 413 above MAX_JSON_BODY (from Content-Length before
 * reading, and while reading a chunked body), with 503 when the shared budget is spent.
 */
export async function readJsonBody<T>(req: ApiRequest): Promise<T | undefined> {
  const upgradeBody = (req.raw as { upgradeBody?: Buffer }).upgradeBody;
  // The server already read (and bounded) an upgrade request's body.
  if (upgradeBody) return parseJson<T>(upgradeBody);
  declaredJsonLength(req.raw.headers);
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    await new Promise<void>((resolve, reject) => {
      const raw = req.raw;
      // On a refusal the request is paused, not destroyed: the 413/503 must still reach the client
      // (the server then closes the connection, see ApiServer.handle).
      const refuse = (err: Error) => {
        raw.off('data', onData);
        raw.off('end', resolve);
        raw.pause();
        reject(err);
      };
      const onData = (chunk: Buffer) => {
        if (size + chunk.length > MAX_JSON_BODY) return refuse(bodyTooLarge());
        if (!jsonBudget.take(chunk.length)) return refuse(bodyBudgetExhausted());
        size += chunk.length;
        chunks.push(chunk);
      };
      raw.on('data', onData);
      raw.once('end', resolve);
      raw.once('error', reject);
    });
    return parseJson<T>(Buffer.concat(chunks, size));
  } finally {
    jsonBudget.release(size);
  }
}

function parseJson<T>(body: Buffer): T | undefined {
  if (!body.length) return undefined;
  try {
    return JSON.parse(body.toString('utf8')) as T;
  } catch (err) {
    throw new InvalidArgumentError(`invalid JSON body: ${(err as Error).message}`);
  }
}

export function boolParam(q: URLSearchParams, name: string): boolean {
  // Docker's BoolValue: "", 0, no, false and none are false; anything else is true.
  const v = (q.get(name) ?? '').trim().toLowerCase();
  return !['', '0', 'no', 'false', 'none'].includes(v);
}

/** An integer query parameter (absent or empty: undefined); anything else is a 400 naming it. */
export function intParam(q: URLSearchParams, name: string): number | undefined {
  const raw = q.get(name);
  if (raw === null || raw.trim() === '') return undefined;
  if (!/^[+-]?\d+$/.test(raw.trim())) throw new InvalidArgumentError(`invalid value for ${name}: ${JSON.stringify(raw)} is not an integer`);
  return Number(raw);
}

/** A UNIX timestamp query parameter (seconds, optionally with a fraction, as the docker CLI sends). */
export function timestampParam(q: URLSearchParams, name: string): number | undefined {
  const raw = q.get(name);
  if (raw === null || raw.trim() === '') return undefined;
  if (!/^[+-]?\d+(\.\d+)?$/.test(raw.trim())) throw new InvalidArgumentError(`invalid value for ${name}: ${JSON.stringify(raw)} is not a UNIX timestamp`);
  return Number(raw);
}

/** Docker's `filters` query parameter: JSON of {key: [values]} or the older {key: {value: true}}. */
export function filtersParam(q: URLSearchParams): Record<string, string[]> {
  const raw = q.get('filters');
  if (!raw) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new InvalidArgumentError(`invalid filters: ${raw}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new InvalidArgumentError(`invalid filters: ${raw}: expected a JSON object`);
  }
  const out: Record<string, string[]> = {};
  for (const [k, v] of Object.entries(parsed as Record<string, unknown>)) {
    out[k] = Array.isArray(v) ? v.map(String) : v && typeof v === 'object' ? Object.keys(v) : [String(v)];
  }
  return out;
}
