/**
 * HostConfig checks at create time. Every field berth accepts either takes effect or is refused
 * with a 400 naming it: a Docker client that asks for something berth cannot do must learn so,
 * never get a container that silently lacks it. Fields left at the value Docker clients send by
 * default (0, "", null, [], {}) are always fine.
 */
import { InvalidArgumentError } from '../contracts/errors';
import { hostDevices } from '../launcher/devices';
import { RLIMITS } from '../launcher/plan';
import type { HostConfigSpec } from './record';

/**
 * Runtime names HostConfig.Runtime may carry. `runc` names the configured runtime too: it is
 * dockerd's default, and Docker clients and compose files name it.
 */
export function runtimeNames(configured: string): string[] {
  return [...new Set([configured, 'runc'])];
}

/**
 * Namespace modes berth honours: its own namespace, the host's (no namespace made), or another
 * container's (`container:<id>`, resolved to the full id by create) where the key is in SHAREABLE.
 */
const NAMESPACE_MODES: Record<string, string[]> = {
  PidMode: ['', 'host'],
  IpcMode: ['', 'private', 'shareable', 'host'],
  CgroupnsMode: ['', 'private', 'host'],
  UTSMode: ['', 'host'],
  UsernsMode: ['', 'host'],
};
const SHAREABLE = new Set(['IpcMode', 'UTSMode', 'PidMode']);

/** Fields berth does not act on, refused unless they hold what a client sends when unset. */
const UNSUPPORTED: { field: string; why: string; unset?: (v: unknown) => boolean }[] = [
  { field: 'Sysctls', why: 'berth does not set namespaced sysctls' },
  { field: 'StorageOpt', why: 'the storage drivers take no per-container options' },
  { field: 'Cgroup', why: "berth does not join another container's cgroup" },
  { field: 'Isolation', why: 'Linux containers have only the default isolation', unset: (v) => v === '' || v === 'default' },
  { field: 'CpuCount', why: 'Windows only' },
  { field: 'CpuPercent', why: 'Windows only' },
  { field: 'IOMaximumIOps', why: 'Windows only' },
  { field: 'IOMaximumBandwidth', why: 'Windows only' },
  { field: 'KernelMemory', why: 'kernel memory limits are deprecated and not set by berth' },
  { field: 'KernelMemoryTCP', why: 'kernel memory limits are deprecated and not set by berth' },
  { field: 'OomKillDisable', why: 'berth does not disable the OOM killer' },
  { field: 'BlkioWeightDevice', why: 'berth sets no per-device block I/O weights' },
  { field: 'BlkioDeviceReadBps', why: 'berth sets no per-device block I/O limits' },
  { field: 'BlkioDeviceWriteBps', why: 'berth sets no per-device block I/O limits' },
  { field: 'BlkioDeviceReadIOps', why: 'berth sets no per-device block I/O limits' },
  { field: 'BlkioDeviceWriteIOps', why: 'berth sets no per-device block I/O limits' },
  { field: 'DeviceRequests', why: 'berth has no device drivers (GPUs)' },
];

function isUnset(v: unknown): boolean {
  if (v === undefined || v === null || v === '' || v === 0 || v === false) return true;
  if (Array.isArray(v)) return v.length === 0;
  return typeof v === 'object' && Object.keys(v as object).length === 0;
}

export function validateHostConfig(h: HostConfigSpec, opts: { networks: boolean; volumes: boolean; runtime: string }): void {
  const mode = h.NetworkMode ?? 'default';
  // With a network manager any network name is checked there (it must exist).
  if (!['default', 'none', 'host', 'bridge'].includes(mode) && (!opts.networks || !/^[^\x00-\x1f\x7f/]{1,128}$/.test(mode))) {
    throw new InvalidArgumentError(`HostConfig.NetworkMode: unsupported network mode "${mode}" (none, host, bridge${opts.networks ? ', or a network name' : ''})`);
  }
  if (h.Runtime && !runtimeNames(opts.runtime).includes(h.Runtime as string)) {
    throw new InvalidArgumentError(`unknown or invalid runtime name: ${h.Runtime} (berth has ${runtimeNames(opts.runtime).join(', ')})`);
  }
  for (const [field, modes] of Object.entries(NAMESPACE_MODES)) {
    const value = h[field] ?? '';
    if (SHAREABLE.has(field) && typeof value === 'string' && value.startsWith('container:')) continue;
    if (!modes.includes(value as string)) {
      throw new InvalidArgumentError(
        `HostConfig.${field}: berth does not support ${JSON.stringify(value)} (${
          modes
            .filter(Boolean)
            .map((m) => JSON.stringify(m))
            .join(', ') || 'only the default'
        }${modes.length > 1 ? ', or empty for its own namespace' : ''})`,
      );
    }
  }
  for (const { field, why, unset } of UNSUPPORTED) {
    const value = h[field];
    if (!isUnset(value) && !unset?.(value)) throw new InvalidArgumentError(`HostConfig.${field}: not supported: ${why}`);
  }
  for (const u of (h.Ulimits as { Name: string; Soft: number; Hard: number }[] | null) ?? []) {
    if (RLIMITS[`RLIMIT_${String(u.Name).toUpperCase()}`] === undefined) throw new InvalidArgumentError(`HostConfig.Ulimits: invalid ulimit type: ${u.Name}`);
    if (u.Soft > u.Hard) throw new InvalidArgumentError(`HostConfig.Ulimits: ulimit ${u.Name}: soft limit ${u.Soft} is above the hard limit ${u.Hard}`);
  }
  hostDevices(h.Devices); // a missing device fails the create, not a later start
  if (typeof h.ShmSize === 'number' && h.ShmSize < 0) throw new InvalidArgumentError('HostConfig.ShmSize: SHM size can not be less than 0');
  if (opts.volumes) return; // Binds (host paths and volume names) are checked by parseMounts
  for (const b of h.Binds ?? []) {
    const [src, dst] = b.split(':');
    if (!src?.startsWith('/') || !dst?.startsWith('/')) throw new InvalidArgumentError(`invalid bind "${b}": expected /host/path:/container/path[:ro]`);
  }
}
