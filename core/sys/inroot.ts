/**
 * Paths below a root that someone else may be changing (a running container's rootfs or upper
 * dir), resolved and opened without ever leaving the root, at each step.
 *
 * - openat2(2) does the resolution in the kernel, atomically: RESOLVE_IN_ROOT for a path as the
 *   container sees it (absolute symlinks and `..` stay at the root), RESOLVE_BENEATH with
 *   RESOLVE_NO_SYMLINKS for "exactly this tree path, real directories only". Linux 5.6+.
 * - A PinnedDir is a directory held by fd; its children are named through
 *   `/proc/self/fd/<fd>/<name>`, so Node's own sync and async fs calls work on them while the
 *   directory itself is never looked up by path again. Calls on such a name must not follow its
 *   final component (lstat, readlink, lchown, lutimes, l*xattr, O_NOFOLLOW opens): the parent is
 *   pinned, the name is never followed, so a swap can only ever show something of the same dir.
 */
import * as fs from 'node:fs';
import { constants as fsc } from 'node:fs';
import { errnoError, libcCalls } from './syscalls';

export const RESOLVE_NO_XDEV = 0x01;
export const RESOLVE_NO_MAGICLINKS = 0x02;
export const RESOLVE_NO_SYMLINKS = 0x04;
export const RESOLVE_BENEATH = 0x08;
export const RESOLVE_IN_ROOT = 0x10;
/** Not in Node's fs.constants (Linux values, the same on x64 and arm64). */
export const O_PATH = 0o10000000;
const O_CLOEXEC = 0o2000000;

/** A path as the container sees it: symlinks followed, but never out of the root. */
export const IN_ROOT = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;
/** Exactly this path of the tree: no symlink anywhere on it, no mount crossed. */
export const EXACT = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV;

/** openat2's number: one table for every architecture Node ships on Linux (x64, arm64, ...). */
const SYS_OPENAT2 = 437;
const ENOSYS = 38;

let openat2Fn: ((nr: number, dirfd: number, path: string, how: Buffer, size: number) => number | bigint) | undefined;

/** openat2(2): an fd for `rel` below `dirfd`, resolved with `resolve` flags; O_CLOEXEC always. */
export function openat2(dirfd: number, rel: string, flags: number, resolve: number, mode = 0): number {
  const c = libcCalls();
  openat2Fn ??= c.koffi.load('libc.so.6').func('long syscall(long nr, int dirfd, const char *path, const void *how, size_t size)');
  const how = Buffer.alloc(24);
  how.writeBigUInt64LE(BigInt(flags | O_CLOEXEC), 0);
  how.writeBigUInt64LE(BigInt(mode), 8);
  how.writeBigUInt64LE(BigInt(resolve), 16);
  const fd = Number(openat2Fn(SYS_OPENAT2, dirfd, rel === '' ? '.' : rel, how, how.length));
  if (fd >= 0) return fd;
  const errno = c.errno();
  if (errno === ENOSYS) throw new Error('openat2(2) is missing: berth needs Linux 5.6 or newer to copy files in and out of containers safely');
  throw errnoError('openat2', errno, rel);
}

function isErrno(err: unknown, ...codes: string[]): boolean {
  return codes.includes((err as NodeJS.ErrnoException).code ?? '');
}

/** A directory held open by fd (O_PATH): its children are named without looking it up again. */
export class PinnedDir {
  private closed = false;
  constructor(readonly fd: number) {}

  /** The directory itself, or its child `name`, as a path for Node's fs calls (never follow it). */
  path(name?: string): string {
    return name === undefined ? `/proc/self/fd/${this.fd}` : `/proc/self/fd/${this.fd}/${name}`;
  }

  /** The child directory `name`, pinned; throws ENOTDIR/ELOOP when it is not a directory now. */
  openDir(name: string): PinnedDir {
    return new PinnedDir(openat2(this.fd, name, O_PATH | fsc.O_DIRECTORY | fsc.O_NOFOLLOW, EXACT));
  }

  /** The child directory `name`, pinned; null when it is not (now) a directory, or gone. */
  childDir(name: string): PinnedDir | null {
    try {
      return this.openDir(name);
    } catch (err) {
      if (isErrno(err, 'ENOTDIR', 'ELOOP', 'ENOENT')) return null;
      throw err;
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    fs.closeSync(this.fd);
  }
}

/** Pins `root` itself (a path berth made, e.g. the container's rootfs or upper dir). */
export function pinRoot(root: string): PinnedDir {
  return new PinnedDir(fs.openSync(root, O_PATH | fsc.O_DIRECTORY));
}

/** `rel` (a container path) resolved as the container sees it, pinned; must be a directory. */
export function openDirInRoot(root: PinnedDir, rel: string): PinnedDir {
  return new PinnedDir(openat2(root.fd, rel, O_PATH | fsc.O_DIRECTORY, IN_ROOT));
}

/**
 * The tree path `components` below `dir`, pinned: every component a real directory, no symlink
 * followed. With `create`, missing components are made (mode 0755 unless given), one at a time,
 * each below the one just pinned.
 */
export function openDirExact(dir: PinnedDir, components: string[], create = false, mode = 0o755): PinnedDir {
  try {
    return new PinnedDir(openat2(dir.fd, components.join('/'), O_PATH | fsc.O_DIRECTORY, EXACT));
  } catch (err) {
    if (!create || !isErrno(err, 'ENOENT')) throw err;
  }
  let current = new PinnedDir(openat2(dir.fd, '.', O_PATH | fsc.O_DIRECTORY, EXACT));
  try {
    for (const part of components) {
      try {
        fs.mkdirSync(current.path(part), mode);
      } catch (err) {
        if (!isErrno(err, 'EEXIST')) throw err;
      }
      const next = current.openDir(part);
      current.close();
      current = next;
    }
    return current;
  } catch (err) {
    current.close();
    throw err;
  }
}

/**
 * The container path of a pinned fd, from the kernel's own name for it (d_path), relative to the
 * root's; null when the fd is not below the root (it cannot be, unless the root moved).
 */
export function containerPathOf(root: PinnedDir, fd: number): string | null {
  const rootPath = fs.readlinkSync(root.path());
  const target = fs.readlinkSync(`/proc/self/fd/${fd}`);
  if (target === rootPath) return '/';
  const prefix = rootPath.endsWith('/') ? rootPath : `${rootPath}/`;
  return target.startsWith(prefix) ? target.slice(prefix.length - 1) : null;
}

/** Flags for reading a file's data: never a symlink, never blocking on a fifo, never a tty. */
const READ_FLAGS = fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK | fsc.O_NOCTTY;

/**
 * Opens `name` in `dir` for reading its data, not following it: the fd and its fstat, or null
 * when it is (now) anything but a regular file, or gone. Read sizes from this fstat, not an
 * earlier lstat: the name may have been swapped in between.
 */
export function openFileIn(dir: PinnedDir, name: string): { fd: number; st: fs.Stats } | null {
  let fd: number;
  try {
    fd = fs.openSync(dir.path(name), READ_FLAGS);
  } catch (err) {
    if (isErrno(err, 'ENOENT', 'ELOOP', 'ENOTDIR', 'ENXIO')) return null;
    throw err;
  }
  const st = fs.fstatSync(fd);
  if (st.isFile()) return { fd, st };
  fs.closeSync(fd);
  return null;
}

/** lstat of `name` in `dir`; null when it is gone. */
export function lstatIn(dir: PinnedDir, name: string): fs.Stats | null {
  try {
    return fs.lstatSync(dir.path(name));
  } catch (err) {
    if (isErrno(err, 'ENOENT', 'ENOTDIR')) return null;
    throw err;
  }
}

/** The target of the symlink `name` in `dir`; null when it is no longer a symlink, or gone. */
export function readlinkIn(dir: PinnedDir, name: string): string | null {
  try {
    return fs.readlinkSync(dir.path(name));
  } catch (err) {
    if (isErrno(err, 'EINVAL', 'ENOENT')) return null;
    throw err;
  }
}

/** chmod of `target` itself: a symlink there (even one swapped in just now) is left alone. */
export function chmodNoFollow(target: string, mode: number): void {
  const fd = fs.openSync(target, O_PATH | fsc.O_NOFOLLOW);
  try {
    // Through the fd's magic link: the very inode opened above, whatever the name is now.
    if (!fs.fstatSync(fd).isSymbolicLink()) fs.chmodSync(`/proc/self/fd/${fd}`, mode);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * rm -rf of `name` in `dir`, each directory pinned before it is listed, so a directory swapped
 * for a symlink mid-way is unlinked as a link, never walked through.
 */
export function removeIn(dir: PinnedDir, name: string): void {
  const st = lstatIn(dir, name);
  if (!st) return;
  const child = st.isDirectory() ? dir.childDir(name) : null;
  if (child) {
    try {
      for (const entry of fs.readdirSync(child.path())) removeIn(child, entry);
    } finally {
      child.close();
    }
    try {
      fs.rmdirSync(dir.path(name));
      return;
    } catch (err) {
      // Swapped for a non-directory since: that is unlinked below.
      if (!isErrno(err, 'ENOTDIR')) throw err;
    }
  }
  try {
    fs.unlinkSync(dir.path(name));
  } catch (err) {
    if (!isErrno(err, 'ENOENT')) throw err;
  }
}
