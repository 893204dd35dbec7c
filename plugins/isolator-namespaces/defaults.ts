/** Docker's defaults (moby oci/defaults.go, runc), which berth matches unless asked otherwise. */
import type { DeviceSpec, MountSpec, SymlinkSpec } from '../../core/plugin';

/** The 14 capabilities Docker keeps: CapBnd 00000000a80425fb. */
export const DEFAULT_CAPABILITIES: readonly string[] = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_FSETID',
  'CAP_FOWNER',
  'CAP_MKNOD',
  'CAP_NET_RAW',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETFCAP',
  'CAP_SETPCAP',
  'CAP_NET_BIND_SERVICE',
  'CAP_SYS_CHROOT',
  'CAP_KILL',
  'CAP_AUDIT_WRITE',
];

export const DEFAULT_MASKED_PATHS: readonly string[] = [
  '/proc/acpi',
  '/proc/asound',
  '/proc/interrupts',
  '/proc/kcore',
  '/proc/keys',
  '/proc/latency_stats',
  '/proc/sched_debug',
  '/proc/scsi',
  '/proc/timer_list',
  '/proc/timer_stats',
  '/sys/devices/virtual/powercap',
  '/sys/firmware',
];

export const DEFAULT_READONLY_PATHS: readonly string[] = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

/**
 * /proc, /sys (read-only unless privileged), /dev and its sub-mounts, in mount order. /dev/shm is
 * `shmSize` bytes (default 64 MiB), or the host's own with `hostIpc`, as Docker does for --ipc host.
 */
export function defaultMounts(opts: { privileged: boolean; shmSize?: number; hostIpc?: boolean }): MountSpec[] {
  const shm: MountSpec = opts.hostIpc
    ? { destination: '/dev/shm', type: 'bind', source: '/dev/shm', options: ['rbind', 'rprivate'] }
    : { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', opts.shmSize ? `size=${opts.shmSize}` : 'size=65536k'] };
  return [
    { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
    { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'] },
    { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', opts.privileged ? 'rw' : 'ro'] },
    { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
    shm,
  ];
}

const dev = (path: string, major: number, minor: number): DeviceSpec => ({ path, type: 'c', major, minor, fileMode: 0o666, uid: 0, gid: 0 });

/** The device nodes every container gets (runc's default allowed devices). */
export const DEFAULT_DEVICES: readonly DeviceSpec[] = [
  dev('/dev/null', 1, 3),
  dev('/dev/zero', 1, 5),
  dev('/dev/full', 1, 7),
  dev('/dev/random', 1, 8),
  dev('/dev/urandom', 1, 9),
  dev('/dev/tty', 5, 0),
];

export const DEFAULT_SYMLINKS: readonly SymlinkSpec[] = [
  { target: 'pts/ptmx', path: '/dev/ptmx' },
  { target: '/proc/self/fd', path: '/dev/fd' },
  { target: '/proc/self/fd/0', path: '/dev/stdin' },
  { target: '/proc/self/fd/1', path: '/dev/stdout' },
  { target: '/proc/self/fd/2', path: '/dev/stderr' },
  { target: '/proc/kcore', path: '/dev/core' },
];

/** /etc/hosts as Docker writes it for a container without a network address. */
export const DEFAULT_HOSTS = [
  '127.0.0.1\tlocalhost',
  '::1\tlocalhost ip6-localhost ip6-loopback',
  'fe00::0\tip6-localnet',
  'ff00::0\tip6-mcastprefix',
  'ff02::1\tip6-allnodes',
  'ff02::2\tip6-allrouters',
];
