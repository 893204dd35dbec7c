/**
 * HostConfig.Devices (`--device /dev/x[:/dev/y][:rwm]`): host device nodes a container gets, as
 * the namespaces isolator makes them (mknod in the container's /dev) and the cgroups isolator
 * allows them (a devices rule). Both read them here, so the node and the rule always agree.
 */
import { statSync } from 'node:fs';
import { InvalidArgumentError } from '../contracts/errors';
import type { DeviceSpec } from '../contracts/launch';

export interface HostDevice {
  spec: DeviceSpec;
  /** cgroup permissions: some of r, w, m. */
  permissions: string;
}

interface DeviceMapping {
  PathOnHost?: string;
  PathInContainer?: string;
  CgroupPermissions?: string;
}

/** Linux's dev_t split (glibc's gnu_dev_major/minor) for the numbers Node's stat gives. */
function majorMinor(rdev: number): { major: number; minor: number } {
  const high = Math.floor(rdev / 2 ** 32);
  const low = rdev % 2 ** 32;
  return { major: ((low >>> 8) & 0xfff) | (high & ~0xfff), minor: (low & 0xff) | ((low >>> 12) & ~0xff) };
}

/** The container's devices; a path that is not a device on the host is an error naming it. */
export function hostDevices(devices: unknown): HostDevice[] {
  if (devices === undefined || devices === null) return [];
  if (!Array.isArray(devices)) throw new InvalidArgumentError('HostConfig.Devices: expected a list');
  return (devices as DeviceMapping[]).map((d) => {
    const source = d.PathOnHost ?? '';
    const dest = d.PathInContainer || source;
    const permissions = d.CgroupPermissions || 'rwm';
    if (!source.startsWith('/')) throw new InvalidArgumentError(`HostConfig.Devices: PathOnHost must be an absolute path, got ${JSON.stringify(source)}`);
    if (!dest.startsWith('/') || dest.split('/').includes('..')) throw new InvalidArgumentError(`HostConfig.Devices: PathInContainer must be an absolute path without .., got ${JSON.stringify(dest)}`);
    if (!/^[rwm]{1,3}$/.test(permissions)) throw new InvalidArgumentError(`HostConfig.Devices: invalid cgroup permissions ${JSON.stringify(permissions)} for ${source} (some of r, w, m)`);
    let st;
    try {
      st = statSync(source);
    } catch (err) {
      throw new InvalidArgumentError(`error gathering device information while adding custom device "${source}": ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    if (!st.isCharacterDevice() && !st.isBlockDevice()) throw new InvalidArgumentError(`error gathering device information while adding custom device "${source}": not a device node`);
    const { major, minor } = majorMinor(st.rdev);
    return { spec: { path: dest, type: st.isCharacterDevice() ? 'c' : 'b', major, minor, fileMode: st.mode & 0o7777, uid: st.uid, gid: st.gid }, permissions };
  });
}

/** The cgroup v1 devices.allow line for a device. */
export function deviceRule(d: HostDevice): string {
  return `${d.spec.type} ${d.spec.major}:${d.spec.minor} ${d.permissions}`;
}
