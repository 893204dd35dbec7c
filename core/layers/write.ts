/**
 * Writing an OCI layer tar from a change list (see tree.ts): entries are read from `root`,
 * whiteouts become `.wh.NAME`, opaque directories get `.wh..wh..opq`. Streamed entry by entry;
 * hardlinked files inside the list become tar hardlinks; user.* xattrs go into PAX headers.
 */
import { createReadStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as tar from 'tar-stream';
import { OPAQUE_WHITEOUT, WHITEOUT_PREFIX } from './names';
import type { LayerItem } from './tree';
import { splitDev, syscalls as defaultSyscalls, type Syscalls } from '../sys/syscalls';

export function writeLayerTar(root: string, items: LayerItem[], sys: Syscalls = defaultSyscalls): Readable {
  const pack = tar.pack();
  const out = new PassThrough();
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
      const hostPath = path.join(root, item.path);
      const st = await fs.lstat(hostPath);
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
        await addEntry(pack, { ...header, type: 'symlink', linkname: await fs.readlink(hostPath) });
      } else if (st.isFile()) {
        const key = `${st.dev}:${st.ino}`;
        const first = st.nlink > 1 ? linkSources.get(key) : undefined;
        if (first !== undefined) {
          await addEntry(pack, { ...header, type: 'link', linkname: first, size: 0 });
          continue;
        }
        if (st.nlink > 1) linkSources.set(key, item.path);
        const sink = pack.entry({ ...header, type: 'file', size: st.size });
        await pipeline(createReadStream(hostPath), sink as unknown as NodeJS.WritableStream);
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
  run().catch((err) => {
    pack.destroy(err);
    out.destroy(err);
  });
  return out;
}

function addEntry(pack: tar.Pack, header: Partial<tar.Header> & { name: string }): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (err?: Error | null) => (err ? reject(err) : resolve());
    // A file entry without a body waits for one: give empty files an empty buffer.
    if (header.type === 'file') pack.entry(header, Buffer.alloc(0), done);
    else pack.entry(header, done);
  });
}
