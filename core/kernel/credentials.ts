/**
 * Stored registry credentials: the `auths` of a Docker config.json ($DOCKER_CONFIG/config.json,
 * else ~/.docker/config.json), as `docker login` and `berth login` write them.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { CredentialStore } from '../contracts/services';

const DOCKER_HUB_KEYS = ['https://index.docker.io/v1/', 'index.docker.io', 'docker.io', 'registry-1.docker.io'];

export function dockerConfigPath(env = process.env): string {
  return path.join(env.DOCKER_CONFIG ?? path.join(os.homedir(), '.docker'), 'config.json');
}

/** The keys a host may be filed under in `auths`. */
export function authKeys(host: string): string[] {
  if (DOCKER_HUB_KEYS.includes(host)) return DOCKER_HUB_KEYS;
  return [host, `https://${host}`, `http://${host}`, `https://${host}/v1/`, `https://${host}/v2/`];
}

export class DockerConfigCredentials implements CredentialStore {
  constructor(private readonly file = dockerConfigPath()) {}

  async get(host: string) {
    let doc: { auths?: Record<string, { auth?: string; username?: string; password?: string; identitytoken?: string }> };
    try {
      doc = JSON.parse(await fs.promises.readFile(this.file, 'utf8'));
    } catch {
      return undefined;
    }
    for (const key of authKeys(host)) {
      const entry = doc.auths?.[key];
      if (!entry) continue;
      if (entry.auth) {
        const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
        const colon = decoded.indexOf(':');
        if (colon > 0) return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
      }
      if (entry.username || entry.identitytoken) return { username: entry.username, password: entry.password, identitytoken: entry.identitytoken };
    }
    return undefined;
  }
}
