/**
 * The OCI distribution-spec v2 client. It only moves bytes: the core parses manifests, picks
 * platforms and verifies blob digests. Per request it: picks the endpoints (mirrors first, then the
 * host), pings `/v2/` once per endpoint to learn scheme and auth, authorises (Basic or a cached
 * Bearer token), retries transient failures with backoff, and follows blob redirects by hand.
 */
import crypto from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import net from 'node:net';
import { Transform, pipeline, type Readable } from 'node:stream';
import {
  InvalidArgumentError,
  MediaTypes,
  NotFoundError,
  RegistryError,
  type BlobRequestOptions,
  type CredentialStore,
  type Descriptor,
  type FetchedManifest,
  type ImageRef,
  type Logger,
  type Registry,
  type RegistryCredentials,
  type RegistryRequestOptions,
} from '../../core/plugin';
import { TokenCache, basicHeader, hasUsablePassword } from './auth';
import { isValidHost, type DistributionConfig } from './config';
import {
  HttpAgents,
  TransportError,
  backoffMs,
  discard,
  errorDetail,
  isRetryableStatus,
  readBody,
  sendOnce,
  sleep,
  unreachable,
  type RawRequest,
} from './http';
import { parseWwwAuthenticate, type Challenge } from './www-authenticate';

export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

const MANIFEST_ACCEPT = [
  MediaTypes.ociManifest,
  MediaTypes.ociIndex,
  MediaTypes.dockerManifest,
  MediaTypes.dockerManifestList,
  // Asked for only so that a schema1-only image is answered and refused with a clear message.
  MediaTypes.dockerSchema1Signed,
  MediaTypes.dockerSchema1,
].join(', ');

const SCHEMA1 = new Set<string>([MediaTypes.dockerSchema1, MediaTypes.dockerSchema1Signed]);
const REPO_PATH_RE = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/;
const TAG_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const DIGEST_RE = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;
const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const MAX_REDIRECTS = 5;

/** Where requests for one registry go: a mirror or the host itself. */
interface Endpoint {
  /** Network host[:port] (`registry-1.docker.io` for `docker.io`). */
  host: string;
  /** Name used in messages (`docker.io`). */
  display: string;
  /** Forced scheme (a mirror written as http://...). */
  scheme?: 'http' | 'https';
  insecure: boolean;
  /** Keys to look credentials up by in the credential store, in order. */
  credentialKeys: string[];
  /** The registry the reference names (per-request credentials apply), not a mirror. */
  origin: boolean;
}

interface PingState {
  base: URL;
  insecureTls: boolean;
  /** Auth challenges from `GET /v2/` (empty: the registry needs no auth). */
  challenges: Challenge[];
}

interface AuthorizedRequest {
  method: RawRequest['method'];
  /** Path below the endpoint (`/v2/...`) or an absolute URL (upload locations). */
  target: string | URL;
  headers?: Record<string, string | number>;
  body?: RawRequest['body'];
  /** Follow 30x answers by hand (GET/HEAD of blobs). */
  followRedirects?: boolean;
  /** No retries here (an outer loop retries the whole operation). */
  noRetry?: boolean;
}

/** docker.io's many names map to one registry, like Docker does. */
export function canonicalHost(host: string): string {
  const h = host.toLowerCase();
  if (h === 'index.docker.io' || h === 'registry-1.docker.io' || h === 'registry.hub.docker.com') return 'docker.io';
  return host;
}

export function isLoopbackHost(host: string): boolean {
  let name = host;
  const bracket = /^\[([^\]]+)\](?::\d+)?$/.exec(host);
  if (bracket) name = bracket[1];
  else if (name.includes(':') && name.indexOf(':') === name.lastIndexOf(':')) name = name.slice(0, name.indexOf(':'));
  if (name === 'localhost') return true;
  if (net.isIPv4(name)) return name.startsWith('127.');
  if (net.isIPv6(name)) return name === '::1';
  return false;
}

/** `127.0.0.1:5000/busybox:tag` or `...@sha256:...`, for messages. */
function refText(ref: ImageRef, reference: string): string {
  return `${ref.domain}/${ref.path}${reference.includes(':') ? '@' : ':'}${reference}`;
}

class Semaphore {
  private active = 0;
  private readonly waiting: (() => void)[] = [];
  constructor(private readonly limit: number) {}

  async acquire(signal?: AbortSignal): Promise<() => void> {
    if (this.active >= this.limit) {
      await new Promise<void>((resolve, reject) => {
        const wake = () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        };
        const onAbort = () => {
          const i = this.waiting.indexOf(wake);
          if (i >= 0) this.waiting.splice(i, 1);
          reject(signal!.reason instanceof Error ? signal!.reason : new Error('the operation was aborted'));
        };
        signal?.addEventListener('abort', onAbort, { once: true });
        this.waiting.push(wake);
      });
    } else this.active++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiting.shift();
      if (next) next();
      else this.active--;
    };
  }
}

export class DistributionRegistry implements Registry {
  readonly fallback = true;
  private readonly agents = new HttpAgents();
  private readonly pings = new Map<string, Promise<PingState>>();
  private readonly tokens: TokenCache;
  private readonly slots: Semaphore;

  constructor(
    private readonly config: DistributionConfig,
    private readonly credentialStore: () => CredentialStore | undefined,
    private readonly log: Logger,
  ) {
    this.slots = new Semaphore(config.concurrency);
    this.tokens = new TokenCache(async ({ url, method, headers, body, signal }) => {
      const res = await this.withRetries(url.host, signal, () =>
        sendOnce(this.agents, {
          method,
          url,
          headers: body ? { ...headers, 'Content-Length': body.length } : headers,
          body: body ? () => body : undefined,
          signal,
          timeoutMs: this.config.timeoutMs,
          insecureTls: this.hostConfig(canonicalHost(url.host)).insecure,
        }),
      );
      return { status: res.statusCode ?? 0, text: (await readBody(res)).toString('utf8') };
    });
  }

  /** Tokens fetched from token servers so far. */
  get tokensFetched(): number {
    return this.tokens.fetched;
  }

  claims(ref: ImageRef): boolean {
    return typeof ref.domain === 'string' && isValidHost(ref.domain);
  }

  /** Close idle keep-alive sockets. */
  close(): void {
    this.agents.destroy();
  }

  // ---- pull side -------------------------------------------------------------------------------

  async getManifest(ref: ImageRef, reference: string, opts: RegistryRequestOptions = {}): Promise<FetchedManifest> {
    this.checkRef(ref, reference);
    const what = refText(ref, reference);
    return this.onEndpoints(ref.domain, true, opts.signal, async (ep) => {
      const res = await this.request(ep, [`repository:${ref.path}:pull`], opts, {
        method: 'GET',
        target: `/v2/${ref.path}/manifests/${reference}`,
        headers: { Accept: MANIFEST_ACCEPT },
      });
      if (res.statusCode !== 200) throw await this.statusError(res, ep, `manifest ${what}`, 'manifest unknown', opts);
      const bytes = await readCapped(res, what);
      const mediaType = manifestMediaType(res.headers['content-type'], bytes);
      if (SCHEMA1.has(mediaType)) {
        throw new RegistryError(
          `unsupported manifest: ${what} uses Docker image manifest schema 1 (${mediaType}), which berth does not support; push the image again with a current client`,
          400,
        );
      }
      if (reference.startsWith('sha256:')) {
        const actual = `sha256:${crypto.createHash('sha256').update(bytes).digest('hex')}`;
        if (actual !== reference) throw new RegistryError(`manifest digest mismatch for ${what}: ${ep.display} served ${actual}`, 502);
      }
      return { bytes, mediaType };
    });
  }

  async getBlob(ref: ImageRef, desc: Descriptor, opts: BlobRequestOptions = {}): Promise<Readable> {
    this.checkRef(ref, desc.digest);
    const offset = opts.offset ?? 0;
    const release = await this.slots.acquire(opts.signal);
    try {
      const stream = await this.onEndpoints(ref.domain, true, opts.signal, async (ep) => {
        const res = await this.request(ep, [`repository:${ref.path}:pull`], opts, {
          method: 'GET',
          target: `/v2/${ref.path}/blobs/${desc.digest}`,
          headers: offset > 0 ? { Range: `bytes=${offset}-` } : {},
          followRedirects: true,
        });
        if (res.statusCode === 206 && offset > 0) return res as Readable;
        if (res.statusCode === 200) {
          // A server that ignores Range sends everything: drop what the caller already has.
          return offset > 0 ? skipBytes(res, offset) : (res as Readable);
        }
        throw await this.statusError(res, ep, `blob ${ref.domain}/${ref.path}@${desc.digest}`, 'blob unknown', opts);
      });
      stream.once('close', release);
      stream.once('end', release);
      stream.once('error', release);
      return stream;
    } catch (err) {
      release();
      throw err;
    }
  }

  // ---- login -----------------------------------------------------------------------------------

  async login(host: string, credentials: RegistryCredentials, opts: RegistryRequestOptions = {}): Promise<void> {
    const name = canonicalHost(host.replace(/^https?:\/\//, '').replace(/\/.*$/, ''));
    if (!isValidHost(name)) throw new InvalidArgumentError(`invalid registry host ${JSON.stringify(host)}`);
    const ep = this.endpoints(name, false)[0];
    const ping = await this.ping(ep, opts.signal);
    const bearer = ping.challenges.find((c) => c.scheme === 'bearer' && c.params.realm);
    if (bearer) {
      // A fresh token with these credentials proves them; the token server answers 401 otherwise.
      await this.tokens.get(ep.display, bearer, [], credentials, opts.signal, { fresh: true });
      return;
    }
    if (!ping.challenges.some((c) => c.scheme === 'basic')) return; // the registry needs no login
    if (!hasUsablePassword(credentials)) throw new RegistryError(`unauthorized: username and password required for ${ep.display}`, 401);
    const res = await this.withRetries(ep.display, opts.signal, () =>
      sendOnce(this.agents, {
        method: 'GET',
        url: new URL('/v2/', ping.base),
        headers: { Authorization: basicHeader(credentials) },
        signal: opts.signal,
        timeoutMs: this.config.timeoutMs,
        insecureTls: ping.insecureTls,
      }),
    );
    discard(res);
    if (res.statusCode === 401 || res.statusCode === 403) {
      throw new RegistryError(`unauthorized: incorrect username or password for ${ep.display}`, 401);
    }
    if (res.statusCode !== 200) throw new RegistryError(`registry ${ep.display} answered ${res.statusCode} to login`, 502);
  }

  // ---- push side -------------------------------------------------------------------------------

  async hasBlob(ref: ImageRef, desc: Descriptor, opts: RegistryRequestOptions = {}): Promise<boolean> {
    this.checkRef(ref, desc.digest);
    const ep = this.endpoints(ref.domain, false)[0];
    const res = await this.request(ep, [`repository:${ref.path}:pull,push`], opts, {
      method: 'HEAD',
      target: `/v2/${ref.path}/blobs/${desc.digest}`,
      followRedirects: true,
    });
    discard(res);
    if (res.statusCode === 200) return true;
    if (res.statusCode === 404) return false;
    throw await this.statusError(res, ep, `blob ${ref.domain}/${ref.path}@${desc.digest}`, 'blob unknown', opts);
  }

  async putBlob(
    ref: ImageRef,
    desc: Descriptor,
    body: () => Readable,
    opts: RegistryRequestOptions & { mountFrom?: string[] } = {},
  ): Promise<'pushed' | 'exists' | 'mounted'> {
    this.checkRef(ref, desc.digest);
    const mountFrom = (opts.mountFrom ?? []).filter((from) => from !== ref.path && REPO_PATH_RE.test(from));
    const scopes = [`repository:${ref.path}:pull,push`, ...mountFrom.map((from) => `repository:${from}:pull`)];
    const ep = this.endpoints(ref.domain, false)[0];
    const what = `blob ${ref.domain}/${ref.path}@${desc.digest}`;
    const release = await this.slots.acquire(opts.signal);
    try {
      let session: URL | undefined;
      for (const from of mountFrom) {
        const res = await this.request(ep, scopes, opts, {
          method: 'POST',
          target: `/v2/${ref.path}/blobs/uploads/?mount=${encodeURIComponent(desc.digest)}&from=${encodeURIComponent(from)}`,
          headers: { 'Content-Length': 0 },
        });
        discard(res);
        if (res.statusCode === 201) return 'mounted';
        if (res.statusCode === 202 && res.headers.location) {
          // The registry could not mount but opened an upload session instead: use it.
          session = new URL(res.headers.location, (await this.ping(ep, opts.signal)).base);
          break;
        }
      }
      if (!session && (await this.hasBlob(ref, desc, opts))) return 'exists';
      for (let attempt = 0; ; attempt++) {
        try {
          if (!session) session = await this.startUpload(ep, ref, scopes, opts, what);
          const put = new URL(session);
          put.searchParams.set('digest', desc.digest);
          const res = await this.request(ep, scopes, opts, {
            method: 'PUT',
            target: put,
            headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': desc.size },
            body,
            noRetry: true,
          });
          if (res.statusCode === 201 || res.statusCode === 204) {
            discard(res);
            return 'pushed';
          }
          const err = await this.statusError(res, ep, what, 'blob upload unknown', opts);
          if (!isRetryableStatus(res.statusCode ?? 0) || attempt >= this.config.retries) throw err;
        } catch (err) {
          if (!(err instanceof RegistryError && err.status === 502 && err.cause instanceof TransportError) || attempt >= this.config.retries) throw err;
        }
        session = undefined; // a failed upload session is not reused
        await sleep(backoffMs(attempt, this.config.retryDelayMs), opts.signal);
      }
    } finally {
      release();
    }
  }

  async putManifest(ref: ImageRef, reference: string, manifest: FetchedManifest, opts: RegistryRequestOptions = {}): Promise<void> {
    this.checkRef(ref, reference);
    const ep = this.endpoints(ref.domain, false)[0];
    const res = await this.request(ep, [`repository:${ref.path}:pull,push`], opts, {
      method: 'PUT',
      target: `/v2/${ref.path}/manifests/${reference}`,
      headers: { 'Content-Type': manifest.mediaType, 'Content-Length': manifest.bytes.length },
      body: () => manifest.bytes,
    });
    if (res.statusCode === 201 || res.statusCode === 200 || res.statusCode === 204) {
      discard(res);
      return;
    }
    throw await this.statusError(res, ep, `manifest ${refText(ref, reference)}`, 'manifest unknown', opts);
  }

  // ---- plumbing --------------------------------------------------------------------------------

  private async startUpload(ep: Endpoint, ref: ImageRef, scopes: string[], opts: RegistryRequestOptions, what: string): Promise<URL> {
    const res = await this.request(ep, scopes, opts, {
      method: 'POST',
      target: `/v2/${ref.path}/blobs/uploads/`,
      headers: { 'Content-Length': 0 },
    });
    if (res.statusCode !== 202 || !res.headers.location) throw await this.statusError(res, ep, what, 'blob upload unknown', opts);
    discard(res);
    return new URL(res.headers.location, (await this.ping(ep, opts.signal)).base);
  }

  private checkRef(ref: ImageRef, reference: string): void {
    if (!isValidHost(ref.domain)) throw new InvalidArgumentError(`invalid registry host ${JSON.stringify(ref.domain)}`);
    if (!REPO_PATH_RE.test(ref.path)) throw new InvalidArgumentError(`invalid repository name ${JSON.stringify(ref.path)} for ${ref.domain}`);
    if (!TAG_RE.test(reference) && !DIGEST_RE.test(reference)) {
      throw new InvalidArgumentError(`invalid tag or digest ${JSON.stringify(reference)} for ${ref.domain}/${ref.path}`);
    }
  }

  private hostConfig(host: string): { insecure: boolean; mirrors: string[] } {
    return this.config.registries[host] ?? { insecure: false, mirrors: [] };
  }

  /** Mirrors first (pulls only), then the registry itself. */
  private endpoints(domain: string, withMirrors: boolean): Endpoint[] {
    const display = canonicalHost(domain);
    const cfg = this.hostConfig(display);
    const dockerHub = display === 'docker.io';
    const origin: Endpoint = {
      host: dockerHub ? 'registry-1.docker.io' : display,
      display,
      insecure: cfg.insecure,
      credentialKeys: dockerHub ? ['https://index.docker.io/v1/', 'docker.io', 'index.docker.io', 'registry-1.docker.io'] : [display],
      origin: true,
    };
    if (!withMirrors) return [origin];
    const mirrors = cfg.mirrors.map((mirror): Endpoint => {
      const m = /^(?:(https?):\/\/)?([^/]+)\/?$/.exec(mirror)!;
      return {
        host: m[2],
        display: m[2],
        scheme: m[1] as 'http' | 'https' | undefined,
        insecure: this.hostConfig(m[2]).insecure,
        credentialKeys: [m[2]],
        origin: false,
      };
    });
    return [...mirrors, origin];
  }

  /** Try each endpoint in turn; a mirror's failure falls through to the next, the last one's is thrown. */
  private async onEndpoints<T>(domain: string, withMirrors: boolean, signal: AbortSignal | undefined, fn: (ep: Endpoint) => Promise<T>): Promise<T> {
    const eps = this.endpoints(domain, withMirrors);
    for (let i = 0; ; i++) {
      try {
        return await fn(eps[i]);
      } catch (err) {
        if (i === eps.length - 1 || signal?.aborted) throw err;
        this.log.warn(`mirror ${eps[i].display} failed, trying ${eps[i + 1].display}`, { error: (err as Error).message });
      }
    }
  }

  private async credentialsFor(ep: Endpoint, given: RegistryCredentials | undefined): Promise<RegistryCredentials | undefined> {
    if (ep.origin && given && (given.username || given.identitytoken || given.registrytoken)) return given;
    const store = this.credentialStore();
    if (!store) return undefined;
    for (const key of ep.credentialKeys) {
      try {
        const found = await store.get(key);
        if (found && (found.username || found.identitytoken)) return found;
      } catch (err) {
        this.log.warn(`could not read stored credentials for ${key}`, { error: (err as Error).message });
        return undefined;
      }
    }
    return undefined;
  }

  /** `GET /v2/` once per endpoint: which scheme answers, and which auth it wants. */
  private ping(ep: Endpoint, signal?: AbortSignal): Promise<PingState> {
    const key = `${ep.scheme ?? ''}|${ep.host}`;
    let pending = this.pings.get(key);
    if (!pending) {
      pending = this.doPing(ep, signal);
      this.pings.set(key, pending);
      // A failed ping is not remembered: the next request tries again.
      pending.catch(() => this.pings.delete(key));
    }
    return pending;
  }

  private async doPing(ep: Endpoint, signal?: AbortSignal): Promise<PingState> {
    const candidates: { scheme: 'http' | 'https'; insecureTls: boolean }[] = ep.scheme
      ? [{ scheme: ep.scheme, insecureTls: ep.insecure }]
      : ep.insecure
        ? [{ scheme: 'https', insecureTls: true }, { scheme: 'http', insecureTls: false }]
        : isLoopbackHost(ep.host)
          ? [{ scheme: 'http', insecureTls: false }]
          : [{ scheme: 'https', insecureTls: false }];
    for (let i = 0; ; i++) {
      const { scheme, insecureTls } = candidates[i];
      const base = new URL(`${scheme}://${ep.host}/`);
      let res: IncomingMessage;
      try {
        // Insecure registries: HTTPS first (one try, no retries), then plain HTTP, as Docker does.
        const last = i === candidates.length - 1;
        res = await this.withRetries(
          ep.display,
          signal,
          () => sendOnce(this.agents, { method: 'GET', url: new URL('/v2/', base), signal, timeoutMs: this.config.timeoutMs, insecureTls }),
          last ? this.config.retries : 0,
        );
      } catch (err) {
        if (i < candidates.length - 1 && !signal?.aborted) {
          this.log.debug(`${scheme.toUpperCase()} failed for ${ep.display}, trying ${candidates[i + 1].scheme.toUpperCase()}`, { error: (err as Error).message });
          continue;
        }
        throw err;
      }
      const status = res.statusCode ?? 0;
      if (status === 200 || status === 401) {
        discard(res);
        return { base, insecureTls, challenges: status === 401 ? parseWwwAuthenticate(res.headers['www-authenticate']) : [] };
      }
      const detail = await errorDetail(res);
      throw new RegistryError(
        `registry ${ep.display} does not answer the distribution API: GET /v2/ gave ${status}${detail ? ` (${detail})` : ''}`,
        502,
      );
    }
  }

  /**
   * One authorised request with retries: 429/5xx and connection failures are retried with backoff,
   * a 401 once with fresh auth (the registry may have sent a new challenge or revoked the token).
   * Other statuses are the caller's to judge.
   */
  private async request(ep: Endpoint, scopes: string[], opts: RegistryRequestOptions, req: AuthorizedRequest): Promise<IncomingMessage> {
    const ping = await this.ping(ep, opts.signal);
    const creds = await this.credentialsFor(ep, opts.credentials);
    let scopesNow = scopes;
    let authRetried = false;
    for (let attempt = 0; ; attempt++) {
      const url = typeof req.target === 'string' ? new URL(req.target, ping.base) : req.target;
      const headers: Record<string, string | number> = { ...req.headers };
      // Credentials go to the registry host only, never to an upload location elsewhere.
      if (url.host === ping.base.host) {
        const authorization = await this.authorization(ep, ping, scopesNow, creds, opts.signal);
        if (authorization) headers.Authorization = authorization;
      }
      let res: IncomingMessage;
      try {
        res = await this.send(ep, ping, { method: req.method, url, headers, body: req.body, signal: opts.signal }, req.followRedirects ?? false);
      } catch (err) {
        if (!(err instanceof TransportError)) throw err;
        if (req.noRetry || attempt >= this.config.retries) throw unreachable(ep.display, err);
        this.log.debug(`retrying ${req.method} ${url.pathname} on ${ep.display}`, { error: err.message, attempt });
        await sleep(backoffMs(attempt, this.config.retryDelayMs), opts.signal);
        continue;
      }
      const status = res.statusCode ?? 0;
      if (status === 401 && !authRetried) {
        const challenges = parseWwwAuthenticate(res.headers['www-authenticate']);
        if (challenges.length) {
          authRetried = true;
          const bearer = ping.challenges.find((c) => c.scheme === 'bearer' && c.params.realm);
          if (bearer) this.tokens.invalidate(bearer, scopesNow, creds);
          ping.challenges = challenges;
          // insufficient_scope: the registry says which scope it wants.
          const wanted = challenges.find((c) => c.scheme === 'bearer')?.params.scope;
          if (wanted) scopesNow = [...new Set([...scopesNow, ...wanted.split(' ').filter(Boolean)])];
          discard(res);
          attempt--;
          continue;
        }
      }
      if (isRetryableStatus(status) && !req.noRetry && attempt < this.config.retries) {
        discard(res);
        this.log.debug(`retrying ${req.method} ${url.pathname} on ${ep.display} after ${status}`, { attempt });
        await sleep(backoffMs(attempt, this.config.retryDelayMs, res.headers['retry-after']), opts.signal);
        continue;
      }
      return res;
    }
  }

  private async authorization(
    ep: Endpoint,
    ping: PingState,
    scopes: string[],
    creds: RegistryCredentials | undefined,
    signal?: AbortSignal,
  ): Promise<string | undefined> {
    if (ping.challenges.length === 0) return undefined;
    if (creds?.registrytoken) return `Bearer ${creds.registrytoken}`;
    const bearer = ping.challenges.find((c) => c.scheme === 'bearer' && c.params.realm);
    if (bearer) return `Bearer ${await this.tokens.get(ep.display, bearer, scopes, creds, signal)}`;
    if (ping.challenges.some((c) => c.scheme === 'basic') && hasUsablePassword(creds)) return basicHeader(creds);
    return undefined;
  }

  /** Send, following redirects by hand for GET/HEAD; Authorization is dropped once the host changes. */
  private async send(ep: Endpoint, ping: PingState, req: Omit<RawRequest, 'timeoutMs'>, followRedirects: boolean): Promise<IncomingMessage> {
    let url = req.url;
    let headers = { ...req.headers };
    for (let hops = 0; ; hops++) {
      const res = await sendOnce(this.agents, {
        ...req,
        url,
        headers,
        timeoutMs: this.config.timeoutMs,
        insecureTls: url.host === ping.base.host ? ping.insecureTls : false,
      });
      const location = res.headers.location;
      if (!followRedirects || !REDIRECTS.has(res.statusCode ?? 0) || !location) return res;
      discard(res);
      if (hops >= MAX_REDIRECTS) throw new RegistryError(`too many redirects from ${ep.display} for ${req.url.pathname}`, 502);
      const next = new URL(location, url);
      if (next.protocol !== 'http:' && next.protocol !== 'https:') {
        throw new RegistryError(`registry ${ep.display} redirected to an unsupported URL ${next.protocol}`, 502);
      }
      if (next.host !== ping.base.host || next.protocol !== ping.base.protocol) {
        const { Authorization: _dropped, ...rest } = headers;
        headers = rest;
      }
      url = next;
    }
  }

  /** Sends with retries on connection failures and retryable statuses (ping, token requests). */
  private async withRetries(
    host: string,
    signal: AbortSignal | undefined,
    send: () => Promise<IncomingMessage>,
    retries = this.config.retries,
  ): Promise<IncomingMessage> {
    for (let attempt = 0; ; attempt++) {
      let res: IncomingMessage;
      try {
        res = await send();
      } catch (err) {
        if (!(err instanceof TransportError)) throw err;
        if (attempt >= retries) throw unreachable(host, err);
        await sleep(backoffMs(attempt, this.config.retryDelayMs), signal);
        continue;
      }
      if (isRetryableStatus(res.statusCode ?? 0) && attempt < retries) {
        discard(res);
        await sleep(backoffMs(attempt, this.config.retryDelayMs, res.headers['retry-after']), signal);
        continue;
      }
      return res;
    }
  }

  /** The error for an unexpected status: NotFoundError for 404, auth errors for 401/403. */
  private async statusError(res: IncomingMessage, ep: Endpoint, what: string, notFound: string, opts: RegistryRequestOptions): Promise<Error> {
    const status = res.statusCode ?? 0;
    const creds = status === 401 ? await this.credentialsFor(ep, opts.credentials) : undefined;
    const detail = await errorDetail(res);
    const suffix = detail ? ` (${detail})` : '';
    const name = what.replace(/^\S+ /, '');
    if (status === 404) return new NotFoundError(`${notFound}: ${name}`);
    if (status === 401) {
      const why = creds ? 'incorrect username or password' : 'authentication required';
      return new RegistryError(`unauthorized: ${why} for ${ep.display} (accessing ${name})${suffix}`, 401);
    }
    if (status === 403) return new RegistryError(`denied: access to ${name} refused by ${ep.display}${suffix}`, 403);
    return new RegistryError(`registry ${ep.display} answered ${status} for ${what}${suffix}`, status >= 400 && status < 500 ? status : 502);
  }
}

/** Read a manifest body, refusing it once it passes MAX_MANIFEST_BYTES (the rest is not read). */
async function readCapped(res: IncomingMessage, what: string): Promise<Buffer> {
  const tooLarge = () =>
    new RegistryError(`manifest ${what} is larger than the ${MAX_MANIFEST_BYTES / (1024 * 1024)} MiB limit (${MAX_MANIFEST_BYTES} bytes)`, 400);
  const declared = Number(res.headers['content-length']);
  if (Number.isFinite(declared) && declared > MAX_MANIFEST_BYTES) {
    res.destroy();
    throw tooLarge();
  }
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of res as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > MAX_MANIFEST_BYTES) {
      res.destroy();
      throw tooLarge();
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, total);
}

/** The manifest's media type: the Content-Type, or the body's own `mediaType`/shape when the server sent a generic one. */
function manifestMediaType(contentType: string | undefined, bytes: Buffer): string {
  const header = (contentType ?? '').split(';')[0].trim().toLowerCase();
  if (header && header !== 'application/json' && header !== 'text/plain' && header !== 'application/octet-stream') return header;
  try {
    const body = JSON.parse(bytes.toString('utf8')) as { mediaType?: string; schemaVersion?: number; manifests?: unknown; config?: unknown };
    if (typeof body.mediaType === 'string') return body.mediaType;
    if (body.schemaVersion === 1) return MediaTypes.dockerSchema1Signed;
    if (Array.isArray(body.manifests)) return MediaTypes.ociIndex;
    if (body.config) return MediaTypes.ociManifest;
  } catch {
    // not JSON: report the header as is
  }
  return header || 'application/octet-stream';
}

/** Drop the first `count` bytes of a stream. */
function skipBytes(source: Readable, count: number): Readable {
  let left = count;
  const skipper = new Transform({
    transform(chunk: Buffer, _enc, done) {
      if (left >= chunk.length) {
        left -= chunk.length;
        done();
      } else {
        const rest = chunk.subarray(left);
        left = 0;
        done(null, rest);
      }
    },
  });
  pipeline(source, skipper, () => {});
  return skipper;
}
