/**
 * Host calls that Node lacks, in one place, behind an interface so tests can see what would be
 * called. Built on koffi (prebuilt binaries, works on Node 20), loaded lazily: nothing here runs
 * at import time, and the CLI never imports this module.
 */
import type * as Koffi from 'koffi' with { 'resolution-mode': 'require' };

export interface Syscalls {
  /** flock(2); returns false instead of throwing when LOCK_NB and the lock is held elsewhere. */
  flock(fd: number, operation: number): boolean;
  /** mount(2). `data` is the comma-separated option string (limited by the kernel to one page). */
  mount(source: string, target: string, fstype: string | null, flags: number, data: string | null): void;
  /** umount2(2); pass MNT_DETACH for a lazy unmount. */
  umount2(target: string, flags: number): void;
  /**
   * umount2(2) on a worker thread. Unmounting an overlay syncs its upper filesystem, which can
   * take hundreds of milliseconds after heavy writes; the daemon's event loop must not wait.
   */
  umount2Async(target: string, flags: number): Promise<void>;
  /** mknod(2) for char/block devices and fifos: `mode` includes the S_IF* type bits. Never follows links. */
  mknod(path: string, mode: number, major: number, minor: number): void;
  /** lsetxattr(2): sets an extended attribute on the path itself, never a symlink's target. */
  lsetxattr(path: string, name: string, value: Buffer, flags?: number): void;
  /** lgetxattr(2); null when the attribute does not exist (ENODATA). */
  lgetxattr(path: string, name: string): Buffer | null;
  /** llistxattr(2): the attribute names of the path itself; [] where xattrs are unsupported. */
  llistxattr(path: string): string[];
  /** lremovexattr(2); no error when the attribute is absent. */
  lremovexattr(path: string, name: string): void;
}

export const MS_RDONLY = 0x1;
export const MS_NOSUID = 0x2;
export const MS_NODEV = 0x4;
export const MS_BIND = 0x1000;
export const MS_REC = 0x4000;
export const MS_PRIVATE = 1 << 18;
export const MNT_FORCE = 1;
export const MNT_DETACH = 2;
export const S_IFIFO = 0o010000;
export const S_IFCHR = 0o020000;
export const S_IFBLK = 0o060000;
/** Linux dev_t holds a 12-bit major and a 20-bit minor number (see makedev(3)). */
export const MAX_MAJOR = 0xfff;
export const MAX_MINOR = 0xfffff;

export const LOCK_SH = 1;
export const LOCK_EX = 2;
export const LOCK_NB = 4;
export const LOCK_UN = 8;

const EWOULDBLOCK = 11;
const ERANGE = 34;
const ENODATA = 61;
const ENOTSUP = 95;

let libc: ReturnType<typeof loadLibc> | undefined;

function loadLibc() {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const koffi: typeof Koffi = require('koffi');
  const lib = koffi.load('libc.so.6');
  return {
    koffi,
    flock: lib.func('int flock(int fd, int operation)'),
    mount: lib.func('int mount(const char *source, const char *target, const char *fstype, unsigned long flags, const char *data)'),
    umount2: lib.func('int umount2(const char *target, int flags)'),
    mknod: lib.func('int mknod(const char *path, uint32_t mode, uint64_t dev)'),
    lsetxattr: lib.func('int lsetxattr(const char *path, const char *name, const void *value, size_t size, int flags)'),
    lgetxattr: lib.func('intptr_t lgetxattr(const char *path, const char *name, _Out_ uint8_t *value, size_t size)'),
    llistxattr: lib.func('intptr_t llistxattr(const char *path, _Out_ uint8_t *list, size_t size)'),
    lremovexattr: lib.func('int lremovexattr(const char *path, const char *name)'),
    mallocTrim: lib.func('int malloc_trim(size_t pad)'),
    errno: () => koffi.errno(),
  };
}

export function libcCalls(): NonNullable<typeof libc> {
  libc ??= loadLibc();
  return libc;
}

/** An error shaped like Node's own system errors, so callers can test `.code`. */
export function errnoError(call: string, errno: number, path?: string): NodeJS.ErrnoException {
  const os = require('node:os') as typeof import('node:os');
  const name = Object.entries(os.constants.errno).find(([, v]) => v === errno)?.[0] ?? `E${errno}`;
  const err: NodeJS.ErrnoException = new Error(`${call}${path ? ` ${path}` : ''}: ${name}`);
  err.code = name;
  err.errno = errno;
  err.syscall = call;
  if (path) err.path = path;
  return err;
}

/** glibc's malloc_trim(3): give the free pages of every malloc arena back to the kernel. */
export function mallocTrim(): void {
  libcCalls().mallocTrim(0);
}

export const syscalls: Syscalls = {
  flock(fd, operation) {
    const c = libcCalls();
    if (c.flock(fd, operation) === 0) return true;
    const errno = c.errno();
    if (errno === EWOULDBLOCK && operation & LOCK_NB) return false;
    throw errnoError('flock', errno);
  },
  mount(source, target, fstype, flags, data) {
    const c = libcCalls();
    if (c.mount(source, target, fstype, flags, data) !== 0) throw errnoError('mount', c.errno(), target);
  },
  umount2(target, flags) {
    const c = libcCalls();
    if (c.umount2(target, flags) !== 0) throw errnoError('umount2', c.errno(), target);
  },
  umount2Async(target, flags) {
    const c = libcCalls();
    return new Promise((resolve, reject) => {
      (c.umount2 as unknown as { async: (t: string, f: number, cb: (err: unknown, res: number) => void) => void }).async(target, flags, (err, res) => {
        if (err) return reject(err);
        if (res === 0) return resolve();
        // errno is per thread: repeat the call here to learn why (a failed umount fails fast).
        try {
          syscalls.umount2(target, flags);
          resolve();
        } catch (e) {
          reject(e);
        }
      });
    });
  },
  mknod(path, mode, major, minor) {
    if (!Number.isInteger(major) || major < 0 || major > MAX_MAJOR || !Number.isInteger(minor) || minor < 0 || minor > MAX_MINOR) {
      throw new RangeError(`mknod ${path}: device number ${major}:${minor} out of range`);
    }
    const c = libcCalls();
    if (c.mknod(path, mode, makedev(major, minor)) !== 0) throw errnoError('mknod', c.errno(), path);
  },
  lsetxattr(path, name, value, flags = 0) {
    const c = libcCalls();
    if (c.lsetxattr(path, name, value, value.length, flags) !== 0) throw errnoError('lsetxattr', c.errno(), path);
  },
  lgetxattr(path, name) {
    const c = libcCalls();
    for (let size = 256; ; size *= 4) {
      const buf = Buffer.alloc(size);
      const n = Number(c.lgetxattr(path, name, buf, size));
      if (n >= 0) return buf.subarray(0, n);
      const errno = c.errno();
      if (errno === ENODATA) return null;
      if (errno !== ERANGE || size > 1 << 20) throw errnoError('lgetxattr', errno, path);
    }
  },
  llistxattr(path) {
    const c = libcCalls();
    for (let size = 1024; ; size *= 4) {
      const buf = Buffer.alloc(size);
      const n = Number(c.llistxattr(path, buf, size));
      if (n >= 0)
        return buf
          .subarray(0, n)
          .toString('utf8')
          .split('\0')
          .filter((name) => name !== '');
      const errno = c.errno();
      if (errno === ENOTSUP) return [];
      if (errno !== ERANGE || size > 1 << 20) throw errnoError('llistxattr', errno, path);
    }
  },
  lremovexattr(path, name) {
    const c = libcCalls();
    if (c.lremovexattr(path, name) !== 0) {
      const errno = c.errno();
      if (errno !== ENODATA) throw errnoError('lremovexattr', errno, path);
    }
  },
};

/** glibc's makedev(3) encoding of a device number into dev_t. */
export function makedev(major: number, minor: number): bigint {
  const ma = BigInt(major);
  const mi = BigInt(minor);
  return ((ma & 0xfffff000n) << 32n) | ((ma & 0xfffn) << 8n) | ((mi & 0xffffff00n) << 12n) | (mi & 0xffn);
}

/** The major and minor numbers of a dev_t as Node's fs.Stats reports it (`rdev`). */
export function splitDev(rdev: number): { major: number; minor: number } {
  const dev = BigInt(rdev);
  const major = Number(((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn));
  const minor = Number((dev & 0xffn) | ((dev >> 12n) & ~0xffn));
  return { major, minor };
}
