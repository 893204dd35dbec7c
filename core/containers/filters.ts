/**
 * `GET /containers/json?filters=...` as dockerd applies them (daemon/list.go): ancestor, before,
 * exited, health, id, label, name, network, since, status, volume, publish, expose; any other key is
 * a 400 `invalid filter 'x'`, and a status or health that does not exist is `invalid filter 'status=x'`.
 */
import { InvalidArgumentError } from '../contracts/errors';
import { matchLabels } from '../images/filters';
import type { ContainerRecord } from './record';

const ACCEPTED = new Set(['ancestor', 'before', 'exited', 'health', 'id', 'label', 'name', 'network', 'since', 'status', 'volume', 'publish', 'expose', 'is-task', 'isolation']);
const STATES = ['created', 'running', 'paused', 'restarting', 'removing', 'exited', 'dead'];
const HEALTH = ['starting', 'healthy', 'unhealthy', 'none'];

/** What the filters look at besides the record: its summary's networks, mounts and ports. */
export interface ContainerFacts {
  rec: ContainerRecord;
  networks: Record<string, unknown>;
  mounts: { Name?: string; Source?: string; Destination?: string }[];
  ports: { PrivatePort: number; PublicPort?: number; Type: string }[];
}

export interface FilterLookups {
  /** A container by name or ID (throws NotFound, as dockerd answers for before/since). */
  container(ref: string): ContainerRecord;
  /** The image IDs `ref` names together with all images built on it; empty when no image matches. */
  imageAndDescendants(ref: string): string[];
}

/** docker's filters.Match: each value a regular expression searched for in the text. */
function matchesAny(values: string[], text: string): boolean {
  return values.some((v) => {
    try {
      return new RegExp(v).test(text);
    } catch {
      return false;
    }
  });
}

/** `80`, `80/tcp`, `8080-8090/udp` against a port and protocol. */
function portMatches(spec: string, port: number, proto: string): boolean {
  const [range, p = 'tcp'] = spec.split('/');
  const [lo, hi = lo] = range.split('-').map(Number);
  return p === proto && port >= lo && port <= hi;
}

/**
 * Check `filters` and return the test for each container, and whether they ask for all states
 * (a status filter does, as in dockerd).
 */
export function containerFilter(filters: Record<string, string[]>, lookups: FilterLookups): { impliesAll: boolean; match: (c: ContainerFacts) => boolean } {
  for (const key of Object.keys(filters)) if (!ACCEPTED.has(key)) throw new InvalidArgumentError(`invalid filter '${key}'`);
  for (const s of filters.status ?? []) if (!STATES.includes(s)) throw new InvalidArgumentError(`invalid filter 'status=${s}'`);
  for (const h of filters.health ?? []) if (!HEALTH.includes(h)) throw new InvalidArgumentError(`invalid filter 'health=${h}'`);
  const exited = (filters.exited ?? []).map((e) => {
    if (!/^-?\d+$/.test(e)) throw new InvalidArgumentError(`invalid filter 'exited=${e}'`);
    return Number(e);
  });
  const created = (r: ContainerRecord) => Date.parse(r.Created);
  const before = filters.before?.length ? Math.min(...filters.before.map((b) => created(lookups.container(b)))) : undefined;
  const since = filters.since?.length ? Math.max(...filters.since.map((s) => created(lookups.container(s)))) : undefined;
  const ancestors = filters.ancestor ? new Set(filters.ancestor.flatMap((a) => lookups.imageAndDescendants(a))) : undefined;
  const match = ({ rec, networks, mounts, ports }: ContainerFacts) => {
    if (before !== undefined && created(rec) >= before) return false;
    if (since !== undefined && created(rec) <= since) return false;
    if (filters.id && !matchesAny(filters.id, rec.Id)) return false;
    if (filters.name && !matchesAny(filters.name, rec.Name)) return false;
    if (filters.status && !filters.status.includes(rec.State.Status)) return false;
    if (filters.label && !matchLabels(filters.label, rec.Config.Labels)) return false;
    // A container that never started has no exit code to match.
    if (exited.length && (rec.State.Running || !rec.State.StartedAt || rec.State.StartedAt.startsWith('0001') || !exited.includes(rec.State.ExitCode))) return false;
    if (filters.health) {
      const health = (rec.State as { Health?: { Status?: string } }).Health?.Status || 'none';
      if (!filters.health.includes(health)) return false;
    }
    if (ancestors && !ancestors.has(rec.Image)) return false;
    if (filters.network && !filters.network.some((n) => n in networks || Object.values(networks).some((e) => (e as { NetworkID?: string } | null)?.NetworkID?.startsWith(n)))) return false;
    if (filters.volume && !filters.volume.some((v) => mounts.some((m) => m.Destination === v || (m.Name || m.Source) === v))) return false;
    if (filters.publish && !filters.publish.some((p) => ports.some((x) => x.PublicPort !== undefined && portMatches(p, x.PublicPort, x.Type)))) return false;
    if (filters.expose && !filters.expose.some((p) => ports.some((x) => portMatches(p, x.PrivatePort, x.Type)))) return false;
    if (filters['is-task'] && filters['is-task'].includes('true')) return false;
    return true;
  };
  return { impliesAll: !!filters.status?.length, match };
}
