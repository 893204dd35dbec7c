import { ConfigError } from '../../core/plugin';

/** Per-host settings, from the global `registries` config section. */
export interface HostConfig {
  /** HTTPS without certificate checks, falling back to plain HTTP (Docker's "insecure registry").
   *  Loopback hosts not marked insecure are spoken to in plain HTTP only. */
  insecure: boolean;
  /** Hosts (`host[:port]`, or `http(s)://host[:port]`) tried first, in order, for pulls. */
  mirrors: string[];
}

export interface DistributionConfig {
  registries: Record<string, HostConfig>;
  /** Blob downloads and uploads in flight at once, across all pulls. */
  concurrency: number;
  /** Socket idle timeout per request (waiting for headers, or a stalled body), in ms. */
  timeoutMs: number;
  /** Extra attempts after a retryable failure (429, 5xx, connection error, timeout). */
  retries: number;
  /** First backoff delay; doubles per attempt (capped at 10 s). */
  retryDelayMs: number;
}

export const defaults: DistributionConfig = {
  registries: {},
  concurrency: 6,
  timeoutMs: 30_000,
  retries: 3,
  retryDelayMs: 250,
};

const TOP_KEYS = new Set(Object.keys(defaults));
const HOST_KEYS = new Set(['insecure', 'mirrors']);
/** `host`, `host:port`, `[v6]:port` - what goes before the first `/` of an image reference. */
const HOST_RE = /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:.]+\])(?::([0-9]{1,5}))?$/;

export function isValidHost(host: string): boolean {
  const m = HOST_RE.exec(host);
  return !!m && (m[1] === undefined || (Number(m[1]) > 0 && Number(m[1]) < 65536));
}

function integer(raw: Record<string, unknown>, key: string, min: number, max: number): number {
  const value = raw[key] ?? defaults[key as keyof DistributionConfig];
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(key, `expected an integer from ${min} to ${max}, got ${JSON.stringify(value)}`);
  }
  return value;
}

/** Validate `host[:port]` or `http(s)://host[:port][/]`; returns it unchanged when valid. */
function parseMirror(key: string, value: unknown): string {
  if (typeof value !== 'string' || value === '') throw new ConfigError(key, `expected a host[:port] string, got ${JSON.stringify(value)}`);
  const m = /^(https?:\/\/)?([^/]+)\/?$/.exec(value);
  if (!m || !isValidHost(m[2])) throw new ConfigError(key, `expected host[:port] or http(s)://host[:port], got ${JSON.stringify(value)}`);
  return value;
}

export function parseConfig(raw: Record<string, unknown>): DistributionConfig {
  for (const key of Object.keys(raw)) {
    if (!TOP_KEYS.has(key)) throw new ConfigError(key, `unknown key (expected one of ${[...TOP_KEYS].join(', ')})`);
  }
  const registriesRaw = raw.registries ?? {};
  if (typeof registriesRaw !== 'object' || registriesRaw === null || Array.isArray(registriesRaw)) {
    throw new ConfigError('registries', 'expected an object keyed by registry host');
  }
  const registries: Record<string, HostConfig> = {};
  for (const [host, entry] of Object.entries(registriesRaw as Record<string, unknown>)) {
    const base = `registries.${host}`;
    if (!isValidHost(host)) throw new ConfigError(base, 'expected a registry host like "registry.example.com" or "127.0.0.1:5000" (no scheme, no path)');
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) throw new ConfigError(base, 'expected an object like { insecure: true, mirrors: [] }');
    const e = entry as Record<string, unknown>;
    for (const key of Object.keys(e)) {
      if (!HOST_KEYS.has(key)) throw new ConfigError(`${base}.${key}`, 'unknown key (expected insecure or mirrors)');
    }
    if (e.insecure !== undefined && typeof e.insecure !== 'boolean') throw new ConfigError(`${base}.insecure`, `expected true or false, got ${JSON.stringify(e.insecure)}`);
    if (e.mirrors !== undefined && !Array.isArray(e.mirrors)) throw new ConfigError(`${base}.mirrors`, 'expected an array of hosts');
    registries[host] = {
      insecure: e.insecure === true,
      mirrors: ((e.mirrors as unknown[] | undefined) ?? []).map((m, i) => parseMirror(`${base}.mirrors[${i}]`, m)),
    };
  }
  return {
    registries,
    concurrency: integer(raw, 'concurrency', 1, 64),
    timeoutMs: integer(raw, 'timeoutMs', 100, 3_600_000),
    retries: integer(raw, 'retries', 0, 10),
    retryDelayMs: integer(raw, 'retryDelayMs', 0, 60_000),
  };
}
