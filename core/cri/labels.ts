/**
 * What the CRI knows about a berth container lives in the container's own labels (prefix
 * `io.berth.cri.`), so it survives a berthd restart with the record itself: whether it is a pod
 * sandbox or a container of one, its CRI metadata, labels, annotations and log path.
 */
import type { ContainerRecord } from '../containers/record';

export const CRI_LABEL = {
  kind: 'io.berth.cri.kind',
  sandbox: 'io.berth.cri.sandbox-id',
  metadata: 'io.berth.cri.metadata',
  labels: 'io.berth.cri.labels',
  annotations: 'io.berth.cri.annotations',
  /** Containers: the CRI log file (log_directory + log_path). Sandboxes: the log_directory. */
  log: 'io.berth.cri.log',
  /** Containers: the image as the request named it. */
  image: 'io.berth.cri.image',
  /** Sandboxes: the NamespaceOption they were made with, as JSON. */
  namespaces: 'io.berth.cri.namespaces',
  /** Sandboxes on a CNI network: its name (without the label: a berth network). */
  cniNetwork: 'io.berth.cri.cni-network',
  /** Sandboxes on a CNI network without portmap: the port mappings berth proxies itself. */
  hostPorts: 'io.berth.cri.host-ports',
} as const;

export type CriKind = 'sandbox' | 'container';

export interface CriView {
  kind: CriKind;
  metadata: Record<string, unknown>;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  sandboxId: string;
  log: string;
  image: string;
  namespaces: Record<string, unknown>;
}

function json<T>(v: string | undefined, fallback: T): T {
  try {
    return v ? (JSON.parse(v) as T) : fallback;
  } catch {
    return fallback;
  }
}

/** The CRI view of a record, or undefined for containers the CRI did not make. */
export function criView(rec: ContainerRecord): CriView | undefined {
  const l = rec.Config.Labels ?? {};
  const kind = l[CRI_LABEL.kind];
  if (kind !== 'sandbox' && kind !== 'container') return undefined;
  return {
    kind,
    metadata: json(l[CRI_LABEL.metadata], {}),
    labels: json(l[CRI_LABEL.labels], {}),
    annotations: json(l[CRI_LABEL.annotations], {}),
    sandboxId: kind === 'sandbox' ? rec.Id : (l[CRI_LABEL.sandbox] ?? ''),
    log: l[CRI_LABEL.log] ?? '',
    image: l[CRI_LABEL.image] ?? '',
    namespaces: json(l[CRI_LABEL.namespaces], {}),
  };
}

/** The berth labels that carry a CRI object's identity. */
export function criLabels(kind: CriKind, fields: { metadata: unknown; labels?: Record<string, string>; annotations?: Record<string, string>; extra?: Record<string, string> }): Record<string, string> {
  return {
    [CRI_LABEL.kind]: kind,
    [CRI_LABEL.metadata]: JSON.stringify(fields.metadata ?? {}),
    [CRI_LABEL.labels]: JSON.stringify(fields.labels ?? {}),
    [CRI_LABEL.annotations]: JSON.stringify(fields.annotations ?? {}),
    ...(fields.extra ?? {}),
  };
}

/** CRI timestamps are int64 nanoseconds; sent as decimal strings so no precision is lost. */
export function nanos(ms: number): string {
  return ms > 0 ? (BigInt(Math.round(ms)) * 1_000_000n).toString() : '0';
}

/** An RFC 3339 time as nanoseconds; Go's zero time (never happened) is 0. */
export function nanosOf(time: string | undefined): string {
  if (!time || time.startsWith('0001-')) return '0';
  const ms = Date.parse(time);
  if (Number.isNaN(ms)) return '0';
  // Keep the sub-millisecond digits RFC3339Nano carries.
  const frac = /\.(\d+)/.exec(time)?.[1] ?? '';
  const extra = BigInt((frac.slice(3) + '000000').slice(0, 6));
  return (BigInt(ms) * 1_000_000n + extra).toString();
}

/** CRI label selectors: every key must be present with exactly that value. */
export function matchesSelector(labels: Record<string, string>, selector: Record<string, string> | undefined): boolean {
  return Object.entries(selector ?? {}).every(([k, v]) => labels[k] === v);
}
