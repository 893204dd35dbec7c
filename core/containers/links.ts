/**
 * Legacy links (`--link other:alias`, HostConfig.Links) as dockerd keeps them: stored as
 * `/other:/me/alias`; at start the container gets the linked container's address in /etc/hosts
 * (alias, name, short ID) and the environment Docker documents (ALIAS_PORT_80_TCP=tcp://ip:80,
 * ALIAS_NAME=/me/alias, ALIAS_ENV_KEY=value for the linked container's own env).
 */
import { ConflictError, InvalidArgumentError, NotFoundError } from '../contracts/errors';
import type { ContainerRecord } from './record';

interface Link {
  /** The linked container's name, `/other`. */
  target: string;
  /** The link's full name, `/me/alias`. */
  name: string;
}

/** `other`, `other:alias` or dockerd's stored `/other:/me/alias`, for a container named `self` (`/me`). */
function parseLink(spec: string, self: string): Link {
  const [rawTarget, rawAlias] = spec.split(':', 2);
  const target = `/${rawTarget.replace(/^\//, '')}`;
  const alias = (rawAlias ?? rawTarget).split('/').filter(Boolean).at(-1) ?? '';
  if (target === '/' || !/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(alias)) throw new InvalidArgumentError(`HostConfig.Links: invalid link ${JSON.stringify(spec)} (expected name:alias)`);
  return { target, name: `${self}/${alias}` };
}

/** HostConfig.Links of a new container named `self`, as dockerd stores them; each must name a container. */
export function normalizeLinks(specs: string[], self: string, exists: (name: string) => boolean): string[] {
  return specs.map((spec) => {
    const link = parseLink(spec, self);
    if (!exists(link.target)) throw new NotFoundError(`Could not get container for ${link.target.slice(1)}`);
    return `${link.target}:${link.name}`;
  });
}

const linksOf = (rec: ContainerRecord) => ((rec.HostConfig.Links as string[] | null) ?? []).map((l) => parseLink(l, rec.Name));

/** At start: the /etc/hosts entries (ExtraHosts form) and environment of `rec`'s links; linked containers must run. */
export function linkSetup(rec: ContainerRecord, find: (name: string) => ContainerRecord | undefined, addressOf: (id: string) => string | undefined): { hosts: string[]; env: string[] } {
  const out = { hosts: [] as string[], env: [] as string[] };
  for (const link of linksOf(rec)) {
    const target = find(link.target);
    if (!target?.State.Running) throw new ConflictError(`Cannot link to a non running container: ${link.target} AS ${link.name}`);
    const ip = addressOf(target.Id);
    if (!ip) throw new ConflictError(`Cannot link to ${link.target}: it has no address on a network (links need the bridge network)`);
    out.hosts.push(...linkHosts(link, target, ip));
    out.env.push(...linkEnv(link, target, ip));
  }
  return out;
}

/**
 * Names containers are known by: their own, and `/other/alias` for every link to them. One pass
 * over `all`, so listing a thousand containers does not look at every other one for each.
 */
export function namesOfAll(all: ContainerRecord[]): (rec: ContainerRecord) => string[] {
  const aliases = new Map<string, string[]>();
  for (const c of all) {
    for (const l of linksOf(c)) {
      const names = aliases.get(l.target);
      if (names) names.push(l.name);
      else aliases.set(l.target, [l.name]);
    }
  }
  return (rec) => [rec.Name, ...(aliases.get(rec.Name) ?? [])];
}

/** `parent`'s links without the one named `name` (`/parent/alias`); NotFound when it has no such link. */
export function withoutLink(parent: ContainerRecord, name: string): string[] | null {
  const links = (parent.HostConfig.Links as string[] | null) ?? [];
  const kept = links.filter((l) => parseLink(l, parent.Name).name !== name);
  if (kept.length === links.length) throw new NotFoundError(`Could not find link ${name}`);
  return kept.length ? kept : null;
}

const aliasOf = (l: Link) => l.name.split('/').at(-1)!;

/** /etc/hosts lines for a link, as ExtraHosts entries (`host:ip`). */
function linkHosts(l: Link, linked: ContainerRecord, ip: string): string[] {
  return [...new Set([aliasOf(l), linked.Name.slice(1), linked.Id.slice(0, 12)])].map((h) => `${h}:${ip}`);
}

/** Docker's link environment (moby daemon/links/links.go). */
function linkEnv(l: Link, linked: ContainerRecord, ip: string): string[] {
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
