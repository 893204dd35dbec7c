/**
 * Where a registry's requests go: its mirrors (pulls only) and then the host itself, with
 * Docker's names for docker.io and its rule that loopback registries speak plain HTTP.
 */
import net from 'node:net';
import type { HostConfig } from './config';

/** Where requests for one registry go: a mirror or the host itself. */
export interface Endpoint {
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

/** The settings of one host (`insecure`, `mirrors`); none configured means secure, no mirrors. */
export function hostConfig(registries: Record<string, HostConfig>, host: string): HostConfig {
  return registries[host] ?? { insecure: false, mirrors: [] };
}

/** Mirrors first (pulls only), then the registry itself. */
export function endpointsFor(registries: Record<string, HostConfig>, domain: string, withMirrors: boolean): Endpoint[] {
  const display = canonicalHost(domain);
  const cfg = hostConfig(registries, display);
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
      insecure: hostConfig(registries, m[2]).insecure,
      credentialKeys: [m[2]],
      origin: false,
    };
  });
  return [...mirrors, origin];
}
