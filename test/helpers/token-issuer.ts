/**
 * A tiny Docker token server for tests (the "auth.token" side of distribution): it issues RS256
 * JWTs that carry a self-signed cert in the `x5c` header, which docker-registry 2.8 accepts when
 * that cert is its `rootcertbundle`.
 */
import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

export interface TokenIssuerOptions {
  /** user -> password. When given, requests need matching Basic credentials (401 otherwise). */
  users?: Record<string, string>;
  /** With `users`: still issue pull-only tokens to anonymous requests (like Docker Hub does). */
  anonymousPull?: boolean;
  /** Token lifetime in seconds (default 300). */
  expiresIn?: number;
}

export interface IssuedToken {
  /** The user the token was issued to ('' when anonymous). */
  subject: string;
  /** The raw `scope` query values of the request. */
  scopes: string[];
  service: string | null;
}

export interface TokenIssuer {
  /** `http://127.0.0.1:PORT/token`: goes into the registry's `auth.token.realm`. */
  realm: string;
  service: string;
  issuer: string;
  /** PEM cert the registry trusts (`rootcertbundle`). */
  certFile: string;
  /** Number of tokens issued so far. */
  readonly tokensIssued: number;
  /** Every token issued, in order. */
  readonly issued: readonly IssuedToken[];
  /** Number of requests refused with 401. */
  readonly refused: number;
  stop(): Promise<void>;
}

const b64url = (data: Buffer | string) => Buffer.from(data).toString('base64url');

export async function startTokenIssuer(opts: TokenIssuerOptions = {}): Promise<TokenIssuer> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'berth-token-issuer-'));
  const keyFile = path.join(dir, 'key.pem');
  const certFile = path.join(dir, 'cert.pem');
  try {
    await execFileP('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '2', '-subj', '/CN=berth-test-token-issuer']);
  } catch (err) {
    await fs.rm(dir, { recursive: true, force: true });
    throw err;
  }
  const privateKey = crypto.createPrivateKey(await fs.readFile(keyFile));
  const certDer = new crypto.X509Certificate(await fs.readFile(certFile)).raw;
  const service = 'berth-test-registry';
  const issuer = 'berth-test-issuer';
  const expiresIn = opts.expiresIn ?? 300;
  const issued: IssuedToken[] = [];
  let refused = 0;

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    if (url.pathname !== '/token') {
      res.writeHead(404).end();
      return;
    }
    const subject = authenticate(req.headers.authorization, opts.users);
    const scopes = url.searchParams.getAll('scope');
    const anonymousAllowed = !opts.users || opts.anonymousPull;
    if (subject === null || (subject === '' && !anonymousAllowed)) {
      refused++;
      res.writeHead(401, { 'Content-Type': 'application/json', 'WWW-Authenticate': 'Basic realm="berth-test-token"' });
      res.end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'bad credentials' }] }));
      return;
    }
    const access = scopes.flatMap((scope) => parseScope(scope, subject === '' && !!opts.users));
    const now = Math.floor(Date.now() / 1000);
    const header = { alg: 'RS256', typ: 'JWT', x5c: [certDer.toString('base64')] };
    const claims = {
      iss: issuer,
      sub: subject,
      aud: url.searchParams.get('service') ?? service,
      exp: now + expiresIn,
      nbf: now - 10,
      iat: now,
      jti: crypto.randomUUID(),
      access,
    };
    const signingInput = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    const signature = crypto.sign('sha256', Buffer.from(signingInput), privateKey);
    const token = `${signingInput}.${b64url(signature)}`;
    issued.push({ subject, scopes, service: url.searchParams.get('service') });
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ token, access_token: token, expires_in: expiresIn, issued_at: new Date(now * 1000).toISOString() }));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  return {
    realm: `http://127.0.0.1:${port}/token`,
    service,
    issuer,
    certFile,
    get tokensIssued() {
      return issued.length;
    },
    get issued() {
      return issued;
    },
    get refused() {
      return refused;
    },
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
}

/** '' for anonymous, the user name for good credentials, null for bad ones. */
function authenticate(header: string | undefined, users: Record<string, string> | undefined): string | null {
  if (!header) return '';
  const match = /^Basic\s+(\S+)$/i.exec(header);
  if (!match) return null;
  const decoded = Buffer.from(match[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return null;
  const user = decoded.slice(0, colon);
  const password = decoded.slice(colon + 1);
  if (!users) return user;
  return users[user] === password ? user : null;
}

/** `repository:name:pull,push` -> access entries (several scopes may share one query value, space-separated). */
function parseScope(raw: string, pullOnly: boolean): { type: string; name: string; actions: string[] }[] {
  return raw
    .split(' ')
    .filter(Boolean)
    .flatMap((scope) => {
      const first = scope.indexOf(':');
      const last = scope.lastIndexOf(':');
      if (first < 0 || last === first) return [];
      const type = scope.slice(0, first);
      const name = scope.slice(first + 1, last);
      let actions = scope
        .slice(last + 1)
        .split(',')
        .filter(Boolean);
      if (pullOnly) actions = actions.filter((a) => a === 'pull');
      return [{ type, name, actions }];
    });
}
