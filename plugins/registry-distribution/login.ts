/** `berth login`: prove credentials to a registry (a fresh Bearer token, or Basic on `GET /v2/`). */
import { InvalidArgumentError, RegistryError, type RegistryCredentials, type RegistryRequestOptions } from '../../core/plugin';
import { basicHeader, hasUsablePassword } from './auth';
import { isValidHost } from './config';
import { canonicalHost } from './endpoints';
import { discard, sendOnce } from './http';
import type { RegistrySession } from './session';

export async function login(session: RegistrySession, host: string, credentials: RegistryCredentials, opts: RegistryRequestOptions = {}): Promise<void> {
  const name = canonicalHost(host.replace(/^https?:\/\//, '').replace(/\/.*$/, ''));
  if (!isValidHost(name)) throw new InvalidArgumentError(`invalid registry host ${JSON.stringify(host)}`);
  const ep = session.endpoints(name, false)[0];
  const ping = await session.ping(ep, opts.signal);
  const bearer = ping.challenges.find((c) => c.scheme === 'bearer' && c.params.realm);
  if (bearer) {
    // A fresh token with these credentials proves them; the token server answers 401 otherwise.
    await session.tokens.get(ep.display, bearer, [], credentials, opts.signal, { fresh: true });
    return;
  }
  if (!ping.challenges.some((c) => c.scheme === 'basic')) return; // the registry needs no login
  if (!hasUsablePassword(credentials)) throw new RegistryError(`unauthorized: username and password required for ${ep.display}`, 401);
  const res = await session.withRetries(ep.display, opts.signal, () =>
    sendOnce(session.agents, {
      method: 'GET',
      url: new URL('/v2/', ping.base),
      headers: { Authorization: basicHeader(credentials) },
      signal: opts.signal,
      timeoutMs: session.config.timeoutMs,
      insecureTls: ping.insecureTls,
    }),
  );
  discard(res);
  if (res.statusCode === 401 || res.statusCode === 403) {
    throw new RegistryError(`unauthorized: incorrect username or password for ${ep.display}`, 401);
  }
  if (res.statusCode !== 200) throw new RegistryError(`registry ${ep.display} answered ${res.statusCode} to login`, 502);
}
