/**
 * Authentication for the distribution protocol: Basic credentials, and Bearer tokens fetched from
 * the realm a registry names in its challenge, cached per (realm, service, scopes, identity)
 * until shortly before they expire. Concurrent requests for the same token share one fetch.
 */
import crypto from 'node:crypto';
import { RegistryError, type RegistryCredentials } from '../../core/plugin';
import type { Challenge } from './www-authenticate';

export interface TokenFetch {
  /** Send the token request (with retries); resolves with status and the parsed body text. */
  (req: { url: URL; method: 'GET' | 'POST'; headers: Record<string, string>; body?: Buffer; signal?: AbortSignal }): Promise<{
    status: number;
    text: string;
  }>;
}

interface CachedToken {
  token: string;
  expiresAt: number;
}

/** Identity of a set of credentials for cache keys (never the secret itself). */
export function credentialId(creds: RegistryCredentials | undefined): string {
  if (!creds) return 'anonymous';
  if (creds.registrytoken) return `rt:${hash(creds.registrytoken)}`;
  if (creds.identitytoken) return `it:${hash(creds.identitytoken)}`;
  if (creds.username !== undefined) return `u:${creds.username}:${hash(creds.password ?? '')}`;
  return 'anonymous';
}

function hash(s: string): string {
  return crypto.createHash('sha256').update(s).digest('hex').slice(0, 16);
}

export function hasUsablePassword(creds: RegistryCredentials | undefined): creds is RegistryCredentials & { username: string } {
  return !!creds && typeof creds.username === 'string' && creds.username !== '' && typeof creds.password === 'string';
}

export function basicHeader(creds: { username: string; password?: string }): string {
  return `Basic ${Buffer.from(`${creds.username}:${creds.password ?? ''}`).toString('base64')}`;
}

/** Tokens shorter-lived than this are treated as lasting this long (distribution's token spec). */
const MIN_TOKEN_SECONDS = 60;
/** Renew this long before expiry, so a token does not expire in flight. */
const EXPIRY_MARGIN_MS = 10_000;

export class TokenCache {
  private readonly tokens = new Map<string, CachedToken>();
  private readonly inflight = new Map<string, Promise<string>>();
  /** Tokens fetched so far (for debugging and tests). */
  fetched = 0;

  constructor(private readonly fetchToken: TokenFetch) {}

  private key(challenge: Challenge, scopes: string[], creds: RegistryCredentials | undefined): string {
    return [challenge.params.realm, challenge.params.service ?? '', [...scopes].sort().join(' '), credentialId(creds)].join('|');
  }

  /** Forget a token the registry refused (it may have been revoked or expired early). */
  invalidate(challenge: Challenge, scopes: string[], creds: RegistryCredentials | undefined): void {
    this.tokens.delete(this.key(challenge, scopes, creds));
  }

  async get(registry: string, challenge: Challenge, scopes: string[], creds: RegistryCredentials | undefined, signal?: AbortSignal, opts: { fresh?: boolean } = {}): Promise<string> {
    const key = this.key(challenge, scopes, creds);
    if (!opts.fresh) {
      const cached = this.tokens.get(key);
      if (cached && cached.expiresAt > Date.now()) return cached.token;
      const pending = this.inflight.get(key);
      if (pending) return pending;
    }
    const promise = this.fetch(registry, challenge, scopes, creds, signal).then(({ token, lifetimeMs }) => {
      this.tokens.set(key, { token, expiresAt: Date.now() + lifetimeMs - EXPIRY_MARGIN_MS });
      return token;
    });
    this.inflight.set(key, promise);
    try {
      return await promise;
    } finally {
      if (this.inflight.get(key) === promise) this.inflight.delete(key);
    }
  }

  private async fetch(registry: string, challenge: Challenge, scopes: string[], creds: RegistryCredentials | undefined, signal?: AbortSignal): Promise<{ token: string; lifetimeMs: number }> {
    const realmText = challenge.params.realm;
    let realm: URL;
    try {
      realm = new URL(realmText);
      if (realm.protocol !== 'http:' && realm.protocol !== 'https:') throw new Error('not http(s)');
    } catch {
      throw new RegistryError(`registry ${registry} named an invalid token realm ${JSON.stringify(realmText)}`, 502);
    }
    const service = challenge.params.service;
    let res: { status: number; text: string };
    if (creds?.identitytoken) {
      // OAuth2 refresh-token grant, as Docker does with identity tokens.
      const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: creds.identitytoken, client_id: 'berth' });
      if (service) form.set('service', service);
      if (scopes.length) form.set('scope', scopes.join(' '));
      res = await this.fetchToken({
        url: realm,
        method: 'POST',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
        body: Buffer.from(form.toString()),
        signal,
      });
    } else {
      const url = new URL(realm);
      if (service) url.searchParams.set('service', service);
      for (const scope of scopes) url.searchParams.append('scope', scope);
      const headers: Record<string, string> = {};
      if (hasUsablePassword(creds)) {
        url.searchParams.set('account', creds.username);
        headers.Authorization = basicHeader(creds);
      }
      res = await this.fetchToken({ url, method: 'GET', headers, signal });
    }
    this.fetched++;
    if (res.status === 401 || res.status === 403) {
      const why = hasUsablePassword(creds) || creds?.identitytoken ? 'incorrect username or password' : 'authentication required';
      throw new RegistryError(`unauthorized: ${why} for ${registry}`, 401);
    }
    if (res.status !== 200) {
      throw new RegistryError(`token server ${realm.host} answered ${res.status} for ${registry}`, 502);
    }
    let body: { token?: string; access_token?: string; expires_in?: number };
    try {
      body = JSON.parse(res.text);
    } catch {
      throw new RegistryError(`token server ${realm.host} sent a body that is not JSON for ${registry}`, 502);
    }
    const token = body.token ?? body.access_token;
    if (typeof token !== 'string' || token === '') {
      throw new RegistryError(`token server ${realm.host} sent no token for ${registry}`, 502);
    }
    const seconds = typeof body.expires_in === 'number' && body.expires_in > MIN_TOKEN_SECONDS ? body.expires_in : MIN_TOKEN_SECONDS;
    return { token, lifetimeMs: seconds * 1000 };
  }
}
