/**
 * Copying a whole tree as fast as the disk allows while keeping everything a layer can hold:
 * reflinks where the filesystem has them (COPYFILE_FICLONE; libuv falls back to
 * copy_file_range/sendfile), hardlinks (an inode map), symlinks, devices, fifos, modes, owners,
 * mtimes and xattrs. Directories are walked in parallel with a bounded number of operations in
 * flight; a directory's metadata is set after its children, so its mtime survives.
 */
import { constants as fsc, promises as fs, type Stats } from 'node:fs';
import * as fsSync from 'node:fs';
import path from 'node:path';
import { S_IFBLK, S_IFCHR, S_IFIFO, splitDev, type Syscalls } from '../../core/plugin';

/** A counting semaphore: at most `limit` callers between acquire and release. */
class Limiter {
  private active = 0;
  private readonly waiting: Array<() => void> = [];
  constructor(private readonly limit: number) {}
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.active++;
    try {
      return await fn();
    } finally {
      this.active--;
      this.waiting.shift()?.();
    }
  }
}

export interface CopyOptions {
  sys: Syscalls;
  /** Operations in flight at once (libuv's pool has 4 threads; a few more keep it busy). */
  concurrency?: number;
}

export async function copyTree(src: string, dst: string, opts: CopyOptions): Promise<void> {
  const limiter = new Limiter(opts.concurrency ?? 16);
  const links = new Map<string, Promise<string>>();
  const chown = process.getuid?.() === 0;
  const sys = opts.sys;

  // Metadata calls are synchronous on purpose: each is microseconds, a round trip through libuv's
  // pool is tens, and a tree has thousands of them. File data still copies on the pool, in parallel.
  const setMeta = (from: string, to: string, st: Stats) => {
    if (chown) fsSync.lchownSync(to, st.uid, st.gid);
    if (!st.isSymbolicLink()) fsSync.chmodSync(to, st.mode & 0o7777);
    for (const name of sys.llistxattr(from)) {
      const value = sys.lgetxattr(from, name);
      if (value) sys.lsetxattr(to, name, value);
    }
    fsSync.lutimesSync(to, st.atime, st.mtime);
  };

  const copyEntry = async (from: string, to: string, st: Stats): Promise<void> => {
    if (st.isDirectory()) {
      fsSync.mkdirSync(to, 0o700);
      await Promise.all(
        fsSync.readdirSync(from).map((name) => {
          const childFrom = path.join(from, name);
          return copyEntry(childFrom, path.join(to, name), fsSync.lstatSync(childFrom));
        }),
      );
      setMeta(from, to, st);
      return;
    }
    let created: (() => void) | undefined;
    if (st.nlink > 1) {
      // Later names of one inode link to the first copy, once that copy exists.
      const key = `${st.dev}:${st.ino}`;
      const first = links.get(key);
      if (first !== undefined) {
        const firstPath = await first;
        fsSync.linkSync(firstPath, to);
        return;
      }
      links.set(key, new Promise<string>((resolve) => (created = () => resolve(to))));
    }
    try {
      await copyOne(from, to, st);
    } finally {
      created?.();
    }
  };

  const copyOne = (from: string, to: string, st: Stats) =>
    limiter.run(async () => {
      if (st.isFile()) {
        await fs.copyFile(from, to, fsc.COPYFILE_FICLONE | fsc.COPYFILE_EXCL);
      } else if (st.isSymbolicLink()) {
        fsSync.symlinkSync(fsSync.readlinkSync(from), to);
      } else if (st.isCharacterDevice() || st.isBlockDevice() || st.isFIFO()) {
        const type = st.isCharacterDevice() ? S_IFCHR : st.isBlockDevice() ? S_IFBLK : S_IFIFO;
        const { major, minor } = splitDev(st.rdev);
        sys.mknod(to, type | (st.mode & 0o7777), major, minor);
      } else {
        return; // sockets: not part of a filesystem image
      }
      setMeta(from, to, st);
    });

  await copyEntry(src, dst, fsSync.lstatSync(src));
}
