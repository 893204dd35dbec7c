/**
 * Starting a helper process with posix_spawn(3). Node's spawn forks: the kernel copies berthd's
 * page tables, so a start costs ~50 us per MiB of berthd's RSS (4.6 ms at 108 MB, 19 ms at
 * 256 MB, measured here) on the event loop. glibc's posix_spawn shares the memory until exec
 * (CLONE_VFORK): 0.24 ms whatever berthd's size.
 *
 * The child gets /dev/null on stdin and stdout, a socket to berthd on stderr and another on fd 3
 * (a two-way channel) and no other descriptor, its own session (setsid), default signal dispositions and an empty mask
 * (Node ignores SIGPIPE, and a child would inherit that); only glibc's internal signals 32 and 33
 * stay ignored, as posix_spawn leaves them. berthd reaps it on SIGCHLD.
 */
import { closeSync } from 'node:fs';
import { Socket } from 'node:net';
import { errnoError, libcCalls } from './syscalls';

export interface SpawnedChild {
  pid: number;
  /** The child's stderr (read side). */
  stderr: Socket;
  /** fd 3 in the child: both ways. */
  channel: Socket;
  /** Its wait status once reaped (see waitpid(2)); exit code = status >> 8 when status & 0x7f is 0. */
  exited: Promise<number>;
}

const AF_UNIX = 1;
const SOCK_STREAM = 1;
const SOCK_CLOEXEC = 0o2000000;
const O_RDONLY = 0;
const O_WRONLY = 1;
const WNOHANG = 1;
const POSIX_SPAWN_SETSIGDEF = 0x04;
const POSIX_SPAWN_SETSIGMASK = 0x08;
const POSIX_SPAWN_SETSID = 0x80;
/** glibc's posix_spawn_file_actions_t is 80 bytes, posix_spawnattr_t 336, sigset_t 128: room to spare. */
const OPAQUE_BYTES = 512;

type Fn = (...args: unknown[]) => number;
let calls: Record<string, Fn> | undefined;

function spawnCalls(): Record<string, Fn> {
  if (calls) return calls;
  const lib = libcCalls().koffi.load('libc.so.6');
  const f = (sig: string) => lib.func(sig) as unknown as Fn;
  calls = {
    spawnp: f('int posix_spawnp(_Out_ int *pid, const char *file, void *actions, void *attr, const char **argv, const char **envp)'),
    actionsInit: f('int posix_spawn_file_actions_init(void *actions)'),
    actionsDestroy: f('int posix_spawn_file_actions_destroy(void *actions)'),
    addDup2: f('int posix_spawn_file_actions_adddup2(void *actions, int fd, int newfd)'),
    addOpen: f('int posix_spawn_file_actions_addopen(void *actions, int fd, const char *path, int oflag, uint32_t mode)'),
    addCloseFrom: f('int posix_spawn_file_actions_addclosefrom_np(void *actions, int from)'),
    attrInit: f('int posix_spawnattr_init(void *attr)'),
    attrDestroy: f('int posix_spawnattr_destroy(void *attr)'),
    setFlags: f('int posix_spawnattr_setflags(void *attr, short flags)'),
    setSigDefault: f('int posix_spawnattr_setsigdefault(void *attr, const void *set)'),
    setSigMask: f('int posix_spawnattr_setsigmask(void *attr, const void *set)'),
    sigfillset: f('int sigfillset(void *set)'),
    sigemptyset: f('int sigemptyset(void *set)'),
    socketpair: f('int socketpair(int domain, int type, int protocol, _Out_ int *sv)'),
    waitpid: f('int waitpid(int pid, _Out_ int *status, int options)'),
  };
  return calls;
}

/** Children not reaped yet: pid -> settle with the wait status. */
const unreaped = new Map<number, (status: number) => void>();

function reap(): void {
  const c = spawnCalls();
  for (const [pid, settle] of unreaped) {
    const status = new Int32Array(1);
    if (c.waitpid(pid, status, WNOHANG) !== pid) continue;
    unreaped.delete(pid);
    settle(status[0]);
  }
  if (unreaped.size === 0) process.removeListener('SIGCHLD', reap);
}

function socketPair(): [number, number] {
  const sv = new Int32Array(2);
  if (spawnCalls().socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) !== 0) throw errnoError('socketpair', libcCalls().errno());
  return [sv[0], sv[1]];
}

/** posix_spawnp `file` (searched in PATH) with `args` and berthd's environment; see the file comment. */
export function spawnWithChannel(file: string, args: string[]): SpawnedChild {
  const c = spawnCalls();
  const [errOurs, errTheirs] = socketPair();
  const [chanOurs, chanTheirs] = socketPair();
  const actions = Buffer.alloc(OPAQUE_BYTES);
  const attr = Buffer.alloc(OPAQUE_BYTES);
  const all = Buffer.alloc(OPAQUE_BYTES);
  const none = Buffer.alloc(OPAQUE_BYTES);
  c.actionsInit(actions);
  c.attrInit(attr);
  const pid = new Int32Array(1);
  let rc: number;
  try {
    c.addOpen(actions, 0, '/dev/null', O_RDONLY, 0);
    c.addOpen(actions, 1, '/dev/null', O_WRONLY, 0);
    c.addDup2(actions, errTheirs, 2);
    c.addDup2(actions, chanTheirs, 3);
    // Nothing else crosses, not even a descriptor someone opened without O_CLOEXEC.
    c.addCloseFrom(actions, 4);
    c.sigfillset(all);
    c.sigemptyset(none);
    c.setSigDefault(attr, all);
    c.setSigMask(attr, none);
    c.setFlags(attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
    const env = Object.entries(process.env).map(([k, v]) => `${k}=${v}`);
    // Listening before the spawn: a child that exits at once still finds its reaper.
    if (unreaped.size === 0) process.on('SIGCHLD', reap);
    rc = c.spawnp(pid, file, actions, attr, [file, ...args, null], [...env, null]);
  } finally {
    c.actionsDestroy(actions);
    c.attrDestroy(attr);
    closeSync(errTheirs);
    closeSync(chanTheirs);
  }
  if (rc !== 0) {
    closeSync(errOurs);
    closeSync(chanOurs);
    if (unreaped.size === 0) process.removeListener('SIGCHLD', reap);
    throw errnoError('posix_spawn', rc, file);
  }
  const exited = new Promise<number>((resolve) => unreaped.set(pid[0], resolve));
  reap(); // it may be gone already, its SIGCHLD before the map knew it
  return { pid: pid[0], stderr: new Socket({ fd: errOurs, readable: true, writable: false }), channel: new Socket({ fd: chanOurs, readable: true, writable: true }), exited };
}
