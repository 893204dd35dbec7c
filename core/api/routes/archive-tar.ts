/** The tar a `docker cp` from a container streams (GET /containers/{id}/archive), walked by fd. */
import { fstatSync, promises as fs, type Stats } from 'node:fs';
import { PassThrough, type Readable } from 'node:stream';
import * as tar from 'tar-stream';
import { addEntry, addFile } from '../../layers/write';
import { lstatIn, openFileIn, readlinkIn, type PinnedDir } from '../../sys/inroot';
import { splitDev } from '../../sys/syscalls';
import type { Target } from './archive-paths';

/**
 * Tar of the target, entries named `name`, `name/child`, ...: each directory pinned before it is
 * listed, no name ever followed, file data from an O_NOFOLLOW fd and its own fstat. Whatever the
 * container swaps meanwhile, only its own files can be read; a name that changed type or went
 * away between the listing and the read is left out.
 */
export function tarTree(target: Target, name: string): Readable {
  const pack = tar.pack();
  const out = new PassThrough();
  const links = new Map<string, string>();
  const join = (a: string, b: string) => (a.endsWith('/') ? a + b : `${a}/${b}`);
  const headerOf = (s: Stats, entryName: string): Partial<tar.Header> & { name: string } => ({ name: entryName, mode: s.mode & 0o7777, uid: s.uid, gid: s.gid, mtime: s.mtime });
  const addDir = async (dir: PinnedDir, entryName: string): Promise<void> => {
    await addEntry(pack, { ...headerOf(fstatSync(dir.fd), entryName), type: 'directory' });
    for (const child of (await fs.readdir(dir.path())).sort()) {
      const cs = lstatIn(dir, child);
      if (cs) await add(dir, child, cs, join(entryName, child));
    }
  };
  /** `child` of the pinned `dir`, lstat'ed as `s`. */
  const add = async (dir: PinnedDir, child: string, s: Stats, entryName: string): Promise<void> => {
    if (out.destroyed) return;
    const header = headerOf(s, entryName);
    if (s.isDirectory()) {
      const pinned = dir.childDir(child);
      if (!pinned) return;
      try {
        await addDir(pinned, entryName);
      } finally {
        pinned.close();
      }
    } else if (s.isSymbolicLink()) {
      const linkname = readlinkIn(dir, child);
      if (linkname !== null) await addEntry(pack, { ...header, type: 'symlink', linkname });
    } else if (s.isFile()) {
      const opened = openFileIn(dir, child);
      if (!opened) return;
      await addFile(pack, headerOf(opened.st, entryName), opened, entryName, links);
    } else if (s.isCharacterDevice() || s.isBlockDevice()) {
      const { major, minor } = splitDev(s.rdev);
      await addEntry(pack, { ...header, type: s.isCharacterDevice() ? 'character-device' : 'block-device', devmajor: major, devminor: minor });
    } else if (s.isFIFO()) {
      await addEntry(pack, { ...header, type: 'fifo' });
    }
    // Sockets cannot be archived; docker leaves them out too.
  };
  pack.pipe(out);
  const walk = target.name === null ? addDir(target.dir, name) : add(target.dir, target.name, target.st, name);
  walk.then(
    () => pack.finalize(),
    (err: Error) => {
      pack.destroy(err);
      out.destroy(err);
    },
  );
  return out;
}
