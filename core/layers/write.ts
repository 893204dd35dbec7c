/**
 * Writing an OCI layer tar from a change list (see tree.ts): entries are read from `root`,
 * whiteouts become `.wh.NAME`, opaque directories get `.wh..wh..opq`. Streamed entry by entry;
 * hardlinked files inside the list become tar hardlinks; user.* xattrs go into PAX headers.
 * `root` may be a running container's tree, changing under us: each item's directory is opened
 * exactly (no symlink on the way, core/sys/inroot.ts) and pinned, the item itself never followed,
 * file data read from an O_NOFOLLOW fd and its own fstat. An item that vanished, or whose path
 * now passes through a symlink, is left out, as if it had been deleted before the walk.
 */
import { closeSync, createReadStream, type Stats } from 'node:fs';
import path from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as tar from 'tar-stream';
import { OPAQUE_WHITEOUT, WHITEOUT_PREFIX } from './names';
import type { LayerItem } from './tree';
import { PadTo } from '../util/stream';
import { lstatIn, openDirExact, openFileIn, pinRoot, readlinkIn, type PinnedDir } from '../sys/inroot';
import { splitDev, syscalls as defaultSyscalls, type Syscalls } from '../sys/syscalls';

export function writeLayerTar(rootPath: string, items: LayerItem[], sys: Syscalls = defaultSyscalls): Readable {
  const pack = tar.pack();
  const out = new PassThrough();
  const root = pinRoot(rootPath);
  /** The pinned directory of the items being written (items come directory by directory). */
  let current: { rel: string; pinned: PinnedDir | null } | null = null;
  const dirOf = (rel: string): PinnedDir | null => {
    if (current?.rel === rel) return current.pinned;
    current?.pinned?.close();
    current = { rel, pinned: openDirOrNull(root, rel) };
    return current.pinned;
  };
  const run = async () => {
    const linkSources = new Map<string, string>();
    for (const item of items) {
      if (item.kind === 'whiteout' || item.kind === 'opaque') {
        const dir = item.kind === 'opaque' ? item.path : path.posix.dirname(item.path);
        const base = item.kind === 'opaque' ? OPAQUE_WHITEOUT : WHITEOUT_PREFIX + path.posix.basename(item.path);
        const name = dir === '.' || dir === '' ? base : `${dir}/${base}`;
        await addEntry(pack, { name, type: 'file', size: 0, mode: 0o644, mtime: new Date(0) });
        continue;
      }
      const parent = dirOf(path.posix.dirname(item.path));
      const base = path.posix.basename(item.path);
      let st = parent && lstatIn(parent, base);
      if (!parent || !st) continue;
      const hostPath = parent.path(base);
      let opened: { fd: number; st: Stats } | null = null;
      if (st.isFile()) {
        opened = openFileIn(parent, base);
        if (!opened) continue;
        st = opened.st;
      }
      const header: Partial<tar.Header> & { name: string; pax?: Record<string, string> } = {
        name: item.path,
        mode: st.mode & 0o7777,
        uid: st.uid,
        gid: st.gid,
        mtime: st.mtime,
      };
      const pax: Record<string, string> = {};
      for (const attr of sys.llistxattr(hostPath)) {
        if (!attr.startsWith('user.')) continue;
        const value = sys.lgetxattr(hostPath, attr);
        if (value) pax[`SCHILY.xattr.${attr}`] = value.toString('utf8');
      }
      if (Object.keys(pax).length > 0) header.pax = pax;
      if (st.isDirectory()) {
        await addEntry(pack, { ...header, type: 'directory' });
      } else if (st.isSymbolicLink()) {
        const linkname = readlinkIn(parent, base);
        if (linkname !== null) await addEntry(pack, { ...header, type: 'symlink', linkname });
      } else if (opened) {
        await addFile(pack, header, opened, item.path, linkSources);
      } else if (st.isCharacterDevice() || st.isBlockDevice()) {
        const { major, minor } = splitDev(st.rdev);
        await addEntry(pack, { ...header, type: st.isCharacterDevice() ? 'character-device' : 'block-device', devmajor: major, devminor: minor });
      } else if (st.isFIFO()) {
        await addEntry(pack, { ...header, type: 'fifo' });
      }
      // Sockets cannot live in a tar; they are left out, as docker does.
    }
    pack.finalize();
  };
  pack.pipe(out);
  run()
    .catch((err) => {
      pack.destroy(err);
      out.destroy(err);
    })
    .finally(() => {
      current?.pinned?.close();
      root.close();
    });
  return out;
}

/** A regular file's entry from its open fd (closed here), or a hardlink to an earlier entry of `linkSources` (inode -> name). */
export async function addFile(pack: tar.Pack, header: Partial<tar.Header> & { name: string }, opened: { fd: number; st: Stats }, name: string, linkSources: Map<string, string>): Promise<void> {
  const { fd, st } = opened;
  const key = `${st.dev}:${st.ino}`;
  const first = st.nlink > 1 ? linkSources.get(key) : undefined;
  if (first !== undefined) {
    closeSync(fd);
    await addEntry(pack, { ...header, type: 'link', linkname: first, size: 0 });
    return;
  }
  if (st.nlink > 1) linkSources.set(key, name);
  if (st.size === 0) {
    closeSync(fd);
    await addEntry(pack, { ...header, type: 'file', size: 0 });
    return;
  }
  // Exactly the size the header promises, however the file changes meanwhile.
  const sink = pack.entry({ ...header, type: 'file', size: st.size });
  await pipeline(createReadStream('', { fd, start: 0, end: st.size - 1 }), new PadTo(st.size), sink as unknown as NodeJS.WritableStream);
}

/** The tree directory `rel` ('.' for the root) pinned exactly, or null when it is gone or no longer a directory. */
function openDirOrNull(root: PinnedDir, rel: string): PinnedDir | null {
  try {
    return openDirExact(root, rel === '.' ? [] : rel.split('/'));
  } catch (err) {
    if (['ENOENT', 'ENOTDIR', 'ELOOP', 'EXDEV'].includes((err as NodeJS.ErrnoException).code ?? '')) return null;
    throw err;
  }
}

/** One tar entry without a body of its own (empty files included). */
export function addEntry(pack: tar.Pack, header: Partial<tar.Header> & { name: string }): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (err?: Error | null) => (err ? reject(err) : resolve());
    // A file entry without a body waits for one: give empty files an empty buffer.
    if (header.type === 'file') pack.entry(header, Buffer.alloc(0), done);
    else pack.entry(header, done);
  });
}
