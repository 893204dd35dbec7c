/**
 * The launch plan: everything the launcher (core/launcher, C) does between clone and exec, in
 * order. Isolators fill it in; the runtime hands it to the launcher. The launcher holds no policy.
 *
 * Order the launcher follows (DESIGN.md section 5): clone into `namespaces` (cgroup namespace is
 * unshared after attach) -> wait for the go-ahead -> become root in a new user namespace -> bind the
 * rootfs onto itself -> `mounts` in order -> `devices` -> `symlinks` -> pivot_root -> `readonlyPaths`
 * -> `maskedPaths` -> read-only rootfs -> `sessionKeyring` -> hostname -> lo up -> terminal -> rlimits
 * -> capabilities, groups, gid, uid -> no_new_privs -> cwd -> every fd but stdio close-on-exec
 * -> `seccomp` -> exec
 * (without no_new_privs the filter goes in before the capabilities are dropped, as runc does).
 */
export interface LaunchPlan {
  /** Namespaces to create: 'pid' | 'mount' | 'uts' | 'ipc' | 'net' | 'cgroup' | 'user'. */
  namespaces: string[];
  /**
   * Join existing namespaces instead (exec): type -> /proc/PID/ns/TYPE path. The launcher joins
   * user first and mount last, then forks so the pid namespace applies; no mounts, no pivot_root.
   */
  joinNamespaces?: Record<string, string>;
  /**
   * Namespaces of another container to share while the rest are new (Docker's `container:<id>`
   * modes, a pod's net/ipc/uts): type ('net' | 'ipc' | 'uts') -> /proc/PID/ns/TYPE path. The
   * runtime starts the launcher inside them, so its clone inherits them.
   */
  enterNamespaces?: Record<string, string>;
  /** Written from the host side by the isolator that asked for a user namespace, in `attach`. */
  uidMappings?: IdMapping[];
  gidMappings?: IdMapping[];
  /** Absolute host path of the prepared root filesystem. */
  rootfs: string;
  readonlyRootfs?: boolean;
  /**
   * Mounts inside the new root, applied in order before pivot_root. Destinations are resolved
   * inside the rootfs (a symlink cannot lead out); missing mount points are created.
   */
  mounts: MountSpec[];
  /** Device nodes made after the mounts (mknod; bind-mounted from the host where mknod is refused). */
  devices?: DeviceSpec[];
  /** Symlinks made after the devices, e.g. /dev/ptmx -> pts/ptmx, /dev/fd -> /proc/self/fd. */
  symlinks?: SymlinkSpec[];
  /** Files get /dev/null bound over them, directories a read-only empty tmpfs. Missing ones are skipped. */
  maskedPaths: string[];
  /** Bound onto themselves and remounted read-only. Missing ones are skipped. */
  readonlyPaths: string[];
  hostname?: string;
  /** Bring `lo` up inside a new network namespace. */
  loopbackUp?: boolean;
  /** `type` is the name as in `RLIMIT_NOFILE` (or `nofile`); -1 or Infinity means unlimited. */
  rlimits?: { type: string; soft: number; hard: number }[];
  /**
   * Capability names kept, `CAP_CHOWN` style. Bounding, effective and permitted get exactly these
   * (as far as the launcher itself holds them); inheritable and ambient stay empty, as Docker does,
   * so a non-root process has none after exec.
   */
  capabilities: string[];
  noNewPrivileges: boolean;
  process: ProcessSpec;
  /** Host cgroup directories the child is placed in while it waits (before exec). */
  cgroupPaths?: string[];
  /** The container's memory cgroup directory: the monitor compares its oom_kill count at exit. */
  oomCgroup?: string;
  /** Where the monitor writes the json-file log; default `<stateDir>/container.log`. */
  logPath?: string;
  /** Rotate the log as dockerd's json-file does: past maxSize bytes, keep maxFiles files in all. */
  logRotation?: { maxSize: number; maxFiles: number };
  /** A seccomp filter for the process (and exec sessions, which copy the container's plan). */
  seccomp?: SeccompSpec;
  /**
   * The session keyring the process joins (runc's `_ses.<container id>`), so keys it adds never
   * land in berthd's keyring or another container's; exec sessions copy it and join the same one.
   */
  sessionKeyring?: string;
}

/** A seccomp filter, made by an isolator in TypeScript; the launcher only installs it. */
export interface SeccompSpec {
  /**
   * The classic-BPF program as hex: 8 bytes per `struct sock_filter` (u16 code, u8 jt, u8 jf,
   * u32 k), little-endian as in memory, at most 4096 instructions. It must check
   * `seccomp_data.arch` itself and leave `execve` allowed.
   */
  bpf: string;
  /** The same policy as an OCI `linux.seccomp` object (defaultAction, architectures, syscalls) for runtime.oci. */
  oci?: Record<string, unknown>;
}

export interface IdMapping {
  containerID: number;
  hostID: number;
  size: number;
}

export interface MountSpec {
  destination: string;
  type: string;
  source: string;
  /** Flags (ro, nosuid, bind, rbind, rprivate ...) and filesystem data (mode=755, size=64m ...). */
  options: string[];
}

export interface DeviceSpec {
  path: string;
  type: 'c' | 'b';
  major: number;
  minor: number;
  /** Permission bits, e.g. 0o666. */
  fileMode: number;
  uid: number;
  gid: number;
}

export interface SymlinkSpec {
  target: string;
  path: string;
}

export interface ProcessSpec {
  args: string[];
  env: string[];
  cwd: string;
  uid: number;
  gid: number;
  additionalGids: number[];
  /** Give the process a pty (made inside the container's /dev/pts) as its controlling terminal. */
  terminal: boolean;
  /** Keep stdin open for attach clients (Docker's OpenStdin); otherwise stdin is /dev/null. */
  openStdin?: boolean;
  /** Close stdin when the first attach client detaches (Docker's StdinOnce). */
  stdinOnce?: boolean;
  /** Initial window size when `terminal`. */
  consoleSize?: { rows: number; cols: number };
}
