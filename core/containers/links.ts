/**
 * Legacy links (`--link other:alias`, HostConfig.Links) as dockerd keeps them: stored as
 * `/other:/me/alias`; at start the container gets the linked container's address in /etc/hosts
 * (alias, name, short ID) and the environment Docker documents (ALIAS_PORT_80_TCP=tcp://ip:80,
 * ALIAS_NAME=/me/alias, ALIAS_ENV_KEY=value for the linked container's own env).
 */
import { InvalidArgumentError } from '../contracts/errors';
import type { ContainerRecord } from './record';

export interface Link {
  /** The linked container's name, `/other`. */
  target: string;
  /** The link's full name, `/me/alias`. */
  name: string;
}

/** `other`, `other:alias` or dockerd's stored `/other:/me/alias`, for a container named `self` (`/me`). */
export function parseLink(spec: string, self: string): Link {
  const [rawTarget, rawAlias] = spec.split(':', 2);
  const target = `/${rawTarget.replace(/^\//, '')}`;
  const alias = (rawAlias ?? rawTarget).split('/').filter(Boolean).at(-1) ?? '';
  if (target === '/' || !/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(alias)) throw new InvalidArgumentError(`HostConfig.Links: invalid link ${JSON.stringify(spec)} (expected name:alias)`);
  return { target, name: `${self}/${alias}` };
}

export function formatLink(l: Link): string {
  return `${l.target}:${l.name}`;
}

const aliasOf = (l: Link) => l.name.split('/').at(-1)!;

/** /etc/hosts lines for a link, as ExtraHosts entries (`host:ip`). */
export function linkHosts(l: Link, linked: ContainerRecord, ip: string): string[] {
  return [...new Set([aliasOf(l), linked.Name.slice(1), linked.Id.slice(0, 12)])].map((h) => `${h}:${ip}`);
}

/** Docker's link environment (moby daemon/links/links.go). */
export function linkEnv(l: Link, linked: ContainerRecord, ip: string): string[] {
  const prefix = aliasOf(l).toUpperCase().replace(/-/g, '_');
  const ports = Object.keys(linked.Config.ExposedPorts ?? {})
    .map((p) => ({ port: Number(p.split('/')[0]), proto: (p.split('/')[1] || 'tcp').toLowerCase() }))
    .filter((p) => Number.isInteger(p.port))
    .sort((a, b) => a.port - b.port || a.proto.localeCompare(b.proto));
  const env: string[] = [];
  if (ports.length) env.push(`${prefix}_PORT=${ports[0].proto}://${ip}:${ports[0].port}`);
  for (const { port, proto } of ports) {
    const key = `${prefix}_PORT_${port}_${proto.toUpperCase()}`;
    env.push(`${key}=${proto}://${ip}:${port}`, `${key}_ADDR=${ip}`, `${key}_PORT=${port}`, `${key}_PROTO=${proto}`);
  }
  env.push(`${prefix}_NAME=${l.name}`);
  for (const e of linked.Config.Env ?? []) {
    const i = e.indexOf('=');
    if (i < 0 || ['HOME', 'PATH'].includes(e.slice(0, i))) continue; // as Docker: build leftovers, not the service's
    env.push(`${prefix}_ENV_${e.slice(0, i)}=${e.slice(i + 1)}`);
  }
  return env;
}
