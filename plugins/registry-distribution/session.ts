/**
 * The plumbing every distribution request goes through: the endpoints of a host (mirrors first),
 * one `GET /v2/` ping per endpoint to learn scheme and auth, authorisation (Basic or a cached
 * Bearer token, re-challenged once on a 401), retries of transient failures with backoff, and
 * blob redirects followed by hand.
 */
import type { IncomingMessage } from 'node:http';
import { NotFoundError, RegistryError, type CredentialStore, type Logger, type RegistryCredentials, type RegistryRequestOptions } from '../../core/plugin';
import { TokenCache, basicHeader, hasUsablePassword } from './auth';
import type { DistributionConfig } from './config';
import { canonicalHost, endpointsFor, hostConfig, isLoopbackHost, type Endpoint } from './endpoints';
import { HttpAgents, TransportError, backoffMs, discard, errorDetail, isRetryableStatus, readBody, sendOnce, sleep, unreachable, type RawRequest } from './http';
import { Semaphore } from './semaphore';
import { parseWwwAuthenticate, type Challenge } from './www-authenticate';

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const MAX_REDIRECTS = 5;

export interface PingState {
  base: URL;
  insecureTls: boolean;
  /** Auth challenges from `GET /v2/` (empty: the registry needs no auth). */
  challenges: Challenge[];
}

export interface AuthorizedRequest {
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

export class RegistrySession {
  readonly agents = new HttpAgents();
  private readonly pings = new Map<string, Promise<PingState>>();
  readonly tokens: TokenCache;
  /** Blob transfers in flight, across all pulls and pushes. */
  readonly slots: Semaphore;

  constructor(
    readonly config: DistributionConfig,
    private readonly credentialStore: () => CredentialStore | undefined,
    readonly log: Logger,
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
          insecureTls: hostConfig(this.config.registries, canonicalHost(url.host)).insecure,
        }),
      );
      return { status: res.statusCode ?? 0, text: (await readBody(res)).toString('utf8') };
    });
  }

  /** Close idle keep-alive sockets. */
  close(): void {
    this.agents.destroy();
  }

  /** Mirrors first (pulls only), then the registry itself. */
  endpoints(domain: string, withMirrors: boolean): Endpoint[] {
    return endpointsFor(this.config.registries, domain, withMirrors);
  }

  /** Try each endpoint in turn; a mirror's failure falls through to the next, the last one's is thrown. */
  async onEndpoints<T>(domain: string, withMirrors: boolean, signal: AbortSignal | undefined, fn: (ep: Endpoint) => Promise<T>): Promise<T> {
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
  ping(ep: Endpoint, signal?: AbortSignal): Promise<PingState> {
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
        ? [
            { scheme: 'https', insecureTls: true },
            { scheme: 'http', insecureTls: false },
          ]
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
      throw new RegistryError(`registry ${ep.display} does not answer the distribution API: GET /v2/ gave ${status}${detail ? ` (${detail})` : ''}`, 502);
    }
  }

  /**
   * One authorised request with retries: 429/5xx and connection failures are retried with backoff,
   * a 401 once with fresh auth (the registry may have sent a new challenge or revoked the token).
   * Other statuses are the caller's to judge.
   */
  async request(ep: Endpoint, scopes: string[], opts: RegistryRequestOptions, req: AuthorizedRequest): Promise<IncomingMessage> {
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

  private async authorization(ep: Endpoint, ping: PingState, scopes: string[], creds: RegistryCredentials | undefined, signal?: AbortSignal): Promise<string | undefined> {
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
  async withRetries(host: string, signal: AbortSignal | undefined, send: () => Promise<IncomingMessage>, retries = this.config.retries): Promise<IncomingMessage> {
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
  async statusError(res: IncomingMessage, ep: Endpoint, what: string, notFound: string, opts: RegistryRequestOptions): Promise<Error> {
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
