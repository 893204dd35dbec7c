/**
 * Syscall numbers for the calls this plugin can deny, per architecture. Only what a deny list
 * needs, not the whole table. Sources (Linux 6.x):
 * - x86_64: arch/x86/entry/syscalls/syscall_64.tbl (the `common` and `64` rows)
 * - aarch64: include/uapi/asm-generic/unistd.h (the generic table arm64 uses)
 * A call missing on an architecture (iopl, ioperm and the old module calls on aarch64) has
 * nothing to deny there. execve, exit and the like are deliberately absent: a filter that
 * refuses them would stop every container.
 */
export type Arch = 'x86_64' | 'aarch64';

export const SYSCALLS: Readonly<Record<string, Readonly<Partial<Record<Arch, number>>>>> = {
  // Namespaces and mounts: the filter's main job, since a container with CAP_SYS_ADMIN could use them.
  unshare: { x86_64: 272, aarch64: 97 },
  setns: { x86_64: 308, aarch64: 268 },
  clone3: { x86_64: 435, aarch64: 435 },
  mount: { x86_64: 165, aarch64: 40 },
  umount2: { x86_64: 166, aarch64: 39 },
  pivot_root: { x86_64: 155, aarch64: 41 },
  // The new mount API reaches what mount(2) does; deny it with mount.
  open_tree: { x86_64: 428, aarch64: 428 },
  move_mount: { x86_64: 429, aarch64: 429 },
  fsopen: { x86_64: 430, aarch64: 430 },
  fsconfig: { x86_64: 431, aarch64: 431 },
  fsmount: { x86_64: 432, aarch64: 432 },
  fspick: { x86_64: 433, aarch64: 433 },
  mount_setattr: { x86_64: 442, aarch64: 442 },
  // Kernel keyring: not namespaced.
  keyctl: { x86_64: 250, aarch64: 219 },
  add_key: { x86_64: 248, aarch64: 217 },
  request_key: { x86_64: 249, aarch64: 218 },
  // Kernel code, modules and the machine itself.
  bpf: { x86_64: 321, aarch64: 280 },
  kexec_load: { x86_64: 246, aarch64: 104 },
  kexec_file_load: { x86_64: 320, aarch64: 294 },
  init_module: { x86_64: 175, aarch64: 105 },
  finit_module: { x86_64: 313, aarch64: 273 },
  delete_module: { x86_64: 176, aarch64: 106 },
  create_module: { x86_64: 174 },
  get_kernel_syms: { x86_64: 177 },
  query_module: { x86_64: 178 },
  reboot: { x86_64: 169, aarch64: 142 },
  swapon: { x86_64: 167, aarch64: 224 },
  swapoff: { x86_64: 168, aarch64: 225 },
  acct: { x86_64: 163, aarch64: 89 },
  quotactl: { x86_64: 179, aarch64: 60 },
  quotactl_fd: { x86_64: 443, aarch64: 443 },
  lookup_dcookie: { x86_64: 212, aarch64: 18 },
  iopl: { x86_64: 172 },
  ioperm: { x86_64: 173 },
  syslog: { x86_64: 103, aarch64: 116 },
  uselib: { x86_64: 134 },
  nfsservctl: { x86_64: 180, aarch64: 42 },
  vhangup: { x86_64: 153, aarch64: 58 },
  // File handles bypass path checks (the "shocker" escape).
  open_by_handle_at: { x86_64: 304, aarch64: 265 },
  name_to_handle_at: { x86_64: 303, aarch64: 264 },
  // Observing other processes and the kernel.
  perf_event_open: { x86_64: 298, aarch64: 241 },
  userfaultfd: { x86_64: 323, aarch64: 282 },
  kcmp: { x86_64: 312, aarch64: 272 },
  process_vm_readv: { x86_64: 310, aarch64: 270 },
  process_vm_writev: { x86_64: 311, aarch64: 271 },
  fanotify_init: { x86_64: 300, aarch64: 262 },
  // Allowed by default (Docker allows or argument-filters them), listed so a config may deny them.
  ptrace: { x86_64: 101, aarch64: 117 },
  personality: { x86_64: 135, aarch64: 92 },
  settimeofday: { x86_64: 164, aarch64: 170 },
  clock_settime: { x86_64: 227, aarch64: 112 },
  clock_adjtime: { x86_64: 305, aarch64: 266 },
  adjtimex: { x86_64: 159, aarch64: 171 },
};

/**
 * Refused with EPERM by default: the calls Docker's default profile (moby profiles/seccomp/default.json)
 * leaves out of its allow list or allows only with CAP_SYS_ADMIN and friends. Unlike Docker, an
 * added capability does not reopen them: the filter, not the capability set, decides.
 */
export const DEFAULT_DENY: readonly string[] = [
  'unshare', 'setns', 'mount', 'umount2', 'pivot_root',
  'open_tree', 'move_mount', 'fsopen', 'fsconfig', 'fsmount', 'fspick', 'mount_setattr',
  'keyctl', 'add_key', 'request_key', 'bpf',
  'kexec_load', 'kexec_file_load', 'init_module', 'finit_module', 'delete_module',
  'create_module', 'get_kernel_syms', 'query_module',
  'reboot', 'swapon', 'swapoff', 'acct', 'quotactl', 'quotactl_fd', 'lookup_dcookie', 'iopl', 'ioperm',
  'syslog', 'uselib', 'nfsservctl', 'vhangup',
  'open_by_handle_at', 'name_to_handle_at',
  'perf_event_open', 'userfaultfd', 'kcmp', 'process_vm_readv', 'process_vm_writev', 'fanotify_init',
];

/**
 * Refused with ENOSYS: clone3 passes its flags in memory a filter cannot read, so Docker answers
 * "not implemented" and glibc falls back to clone(2), whose flags the kernel checks as usual.
 */
export const DEFAULT_ENOSYS: readonly string[] = ['clone3'];

/** The host's architecture in this table's terms, or undefined where there is no table. */
export function hostArch(nodeArch: string = process.arch): Arch | undefined {
  return nodeArch === 'x64' ? 'x86_64' : nodeArch === 'arm64' ? 'aarch64' : undefined;
}
