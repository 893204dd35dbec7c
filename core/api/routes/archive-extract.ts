/**
 * A `docker cp` into a container (PUT /containers/{id}/archive): the client's tar is rewritten
 * (names under the destination, owners) and applied by the same hostile-input code that unpacks
 * image layers, which pins every parent directory before it writes into it, so no entry can land
 * outside the container's rootfs or the volume it names.
 */
import { closeSync, fstatSync, type Stats } from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as tar from 'tar-stream';
import { BerthError, CanceledError, ForbiddenError, InvalidArgumentError } from '../../contracts/errors';
import type { ContainerRecord } from '../../containers/record';
import { resolveUser } from '../../containers/user';
import { applyLayerTar } from '../../layers/apply';
import { containerPathOf, IN_ROOT, lstatIn, O_PATH, openat2, openDirInRoot, type PinnedDir } from '../../sys/inroot';
import type { ApiRequest } from '../router';
import { type Scope, components, openInContainer } from './archive-paths';

/** The PUT body extracted below the scope's root (the rootfs or a volume). */
export async function extractInto(req: ApiRequest, rec: ContainerRecord, scope: Scope, rootfs: string, o: { rawPath: string; noOverwriteDirNonDir: boolean; copyUIDGID: boolean }): Promise<void> {
  const { rawPath, noOverwriteDirNonDir, copyUIDGID } = o;
  const { root, absPath } = scope;
  if (scope.readOnly) throw new ForbiddenError(`container ${rec.Name.replace(/^\//, '')}: ${rawPath} is on a read-only volume`);
  // Unlike a stat, the destination's last component is followed too: extracting "to" a
  // symlink that points at a directory extracts into that directory (as Docker does).
  const destFd = openInContainer(rawPath, rec, () => openat2(root.fd, absPath, O_PATH, IN_ROOT));
  let st: Stats;
  let destPath: string | null;
  try {
    st = fstatSync(destFd);
    destPath = containerPathOf(root, destFd);
  } finally {
    closeSync(destFd);
  }
  if (!st.isDirectory()) throw new InvalidArgumentError(`extraction point is not a directory: ${rawPath}`);
  if (destPath === null) throw new BerthError(`extracting into ${rawPath}: the kernel resolved it outside the container's rootfs`);
  // Owners: root by default (what docker documents); with copyUIDGID the container's user,
  // or the archive's own owners when the container has no user configured.
  let owner: { uid: number; gid: number } | undefined = { uid: 0, gid: 0 };
  if (copyUIDGID) owner = rec.Config.User ? await resolveUser(rootfs, rec.Config.User) : undefined;
  const rewritten = rewriteArchive(req.raw, { root, dest: components(destPath), owner, noOverwriteDirNonDir, shownDest: rawPath });
  req.signal.addEventListener('abort', () => rewritten.destroy(new CanceledError('client went away')));
  try {
    await applyLayerTar(scope.rootPath, rewritten, { whiteouts: 'merge', chown: process.getuid?.() === 0 });
  } catch (err) {
    const e = err as BerthError;
    if (e.status && e.status < 500) throw new BerthError(`extracting into ${rawPath}: ${e.message.replace(/^invalid layer: /, '')}`, e.status);
    if (/Invalid tar header|Unexpected end of data|Header exceeds/.test(e.message)) throw new InvalidArgumentError(`extracting into ${rawPath}: not a valid tar archive: ${e.message}`);
    throw err;
  }
}

interface RewriteOptions {
  /** The root extracted into (the container's rootfs or a volume), pinned. */
  root: PinnedDir;
  /** The destination directory, as components below that root. */
  dest: string[];
  /** Owner for every entry; undefined keeps the archive's. */
  owner?: { uid: number; gid: number };
  noOverwriteDirNonDir: boolean;
  shownDest: string;
}

/** Entry names of a client's archive, cleaned; `..` may not climb out of the destination. */
function clientEntryComponents(name: string): string[] {
  const out: string[] = [];
  for (const part of name.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (!out.length) throw new InvalidArgumentError(`archive entry ${JSON.stringify(name)} points outside the destination directory`);
      out.pop();
      continue;
    }
    out.push(part);
  }
  return out;
}

/**
 * The client's tar, re-packed with every name (and hardlink target) moved below `dest` and the
 * owners replaced, so applyLayerTar can resolve it against the rootfs itself.
 */
function rewriteArchive(source: Readable, o: RewriteOptions): Readable {
  const extract = tar.extract();
  const pack = tar.pack();
  const run = async () => {
    for await (const e of extract) {
      const header = { ...e.header } as tar.Header & { pax?: Record<string, string> };
      const name = header.name;
      if (name.includes('\0')) throw new InvalidArgumentError(`archive entry ${JSON.stringify(name)} contains a NUL byte`);
      const comps = clientEntryComponents(name);
      if (!comps.length) {
        // The archive's own root ("./"): it stands for the destination, which exists already.
        e.resume();
        continue;
      }
      const base = comps[comps.length - 1];
      if (base.startsWith('.wh.')) throw new InvalidArgumentError(`archive entry ${JSON.stringify(name)}: names starting with .wh. are reserved for layer whiteouts`);
      if (o.noOverwriteDirNonDir) await checkOverwrite(o, comps, header.type === 'directory', name);
      header.name = [...o.dest, ...comps].join('/');
      if (header.type === 'link') header.linkname = [...o.dest, ...clientEntryComponents(header.linkname ?? '')].join('/');
      if (o.owner) {
        header.uid = o.owner.uid;
        header.gid = o.owner.gid;
      }
      // The names above are new: PAX path records of the old ones would override them. xattrs stay.
      const xattrs = Object.entries(header.pax ?? {}).filter(([k]) => k.startsWith('SCHILY.xattr.'));
      if (xattrs.length) header.pax = Object.fromEntries(xattrs);
      else delete header.pax;
      const sink = pack.entry(header);
      await pipeline(e, sink as unknown as NodeJS.WritableStream);
    }
    pack.finalize();
  };
  source.on('error', (err) => extract.destroy(err));
  source.pipe(extract);
  run().catch((err: Error) => {
    source.unpipe(extract);
    extract.destroy();
    pack.destroy(err);
  });
  return pack as unknown as Readable;
}

async function checkOverwrite(o: RewriteOptions, comps: string[], isDir: boolean, name: string): Promise<void> {
  const base = comps[comps.length - 1];
  let parent: PinnedDir;
  try {
    parent = openDirInRoot(o.root, [...o.dest, ...comps.slice(0, -1)].join('/'));
  } catch (err) {
    // Nothing there to overwrite (the extraction itself reports a parent that is not a directory).
    if (['ENOENT', 'ENOTDIR'].includes((err as NodeJS.ErrnoException).code ?? '')) return;
    throw err;
  }
  let existing: Stats | null;
  let shown: string;
  try {
    existing = lstatIn(parent, base);
    shown = path.posix.join(containerPathOf(o.root, parent.fd) ?? '/', base);
  } finally {
    parent.close();
  }
  if (!existing) return;
  if (existing.isDirectory() && !isDir) throw new InvalidArgumentError(`cannot overwrite directory ${JSON.stringify(shown)} with non-directory ${JSON.stringify(name)}`);
  if (!existing.isDirectory() && isDir) throw new InvalidArgumentError(`cannot overwrite non-directory ${JSON.stringify(shown)} with directory ${JSON.stringify(name)}`);
}
