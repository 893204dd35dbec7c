/** The client side of registry credentials: Docker's config.json `auths`, shared with `docker login`. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const HUB = 'https://index.docker.io/v1/';

export function configFile(): string {
  return path.join(process.env.DOCKER_CONFIG ?? path.join(os.homedir(), '.docker'), 'config.json');
}

export function authKey(host: string): string {
  return host === 'docker.io' || host === 'index.docker.io' ? HUB : host;
}

function readConfig(): any {
  try {
    return JSON.parse(fs.readFileSync(configFile(), 'utf8'));
  } catch {
    return {};
  }
}

function writeConfig(doc: any): void {
  const file = configFile();
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, JSON.stringify(doc, null, '\t') + '\n', { mode: 0o600 });
  fs.renameSync(tmp, file);
}

export function storedAuth(host: string): { username: string; password: string } | undefined {
  const entry = readConfig().auths?.[authKey(host)];
  if (!entry?.auth) return undefined;
  const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
  const i = decoded.indexOf(':');
  return i > 0 ? { username: decoded.slice(0, i), password: decoded.slice(i + 1) } : undefined;
}

export function saveAuth(host: string, username: string, password: string): void {
  const doc = readConfig();
  doc.auths = { ...(doc.auths ?? {}), [authKey(host)]: { auth: Buffer.from(`${username}:${password}`).toString('base64') } };
  writeConfig(doc);
}

export function removeAuth(host: string): boolean {
  const doc = readConfig();
  if (!doc.auths?.[authKey(host)]) return false;
  delete doc.auths[authKey(host)];
  writeConfig(doc);
  return true;
}

/** Docker's X-Registry-Auth header value for a host, when credentials are stored. */
export function registryAuthHeader(host: string): Record<string, string> {
  const auth = storedAuth(host);
  if (!auth) return {};
  const json = JSON.stringify({ ...auth, serveraddress: host });
  return { 'X-Registry-Auth': Buffer.from(json).toString('base64url') };
}
