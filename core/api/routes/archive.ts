/**
 * `docker cp` both ways: HEAD/GET/PUT /containers/{id}/archive?path=...
 *
 * - HEAD stats a path; GET streams it as a tar whose entries start with the path's base name;
 *   both carry `X-Docker-Container-Path-Stat` (base64 JSON {name,size,mode,mtime,linkTarget},
 *   mode in Go's os.FileMode bits, which the docker CLI decodes).
 * - PUT extracts a tar into a directory of the container.
 *
 * A running container changes its rootfs while we copy (CVE-2018-15664: a directory swapped for a
 * symlink to `/` mid-copy), so nothing here resolves a host path string twice. Paths are
 * resolved by the kernel inside the rootfs as the container itself would see them (openat2
 * RESOLVE_IN_ROOT, core/sys/inroot.ts): absolute symlinks restart at the rootfs, `..` never climbs
 * above it; the result is held by fd, and the walk below it goes directory fd by directory fd,
 * never following a name. The tar of a PUT is rewritten (names under the destination, owners)
 * and applied by the same hostile-input code that unpacks image layers, which pins every parent
 * directory before it writes into it, so no entry can land outside the container. Works for
 * stopped containers too: the rootfs is mounted (counted) for the length of the request.
 */
import { closeSync, fstatSync, promises as fs, type Stats } from 'node:fs';
import type { ServerResponse } from 'node:http';
import path from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as tar from 'tar-stream';
import { BerthError, CanceledError, ForbiddenError, InvalidArgumentError, NotFoundError, NotImplementedError } from '../../contracts/errors';
import type { StorageDriver } from '../../contracts/storage';
import type { ContainerRecord } from '../../containers/record';
import { resolveUser } from '../../containers/user';
import type { Engine } from '../../kernel/engine';
import { applyLayerTar } from '../../layers/apply';
import { addEntry, addFile } from '../../layers/write';
import { containerPathOf, IN_ROOT, lstatIn, O_PATH, openat2, openDirInRoot, openFileIn, pinRoot, readlinkIn, type PinnedDir } from '../../sys/inroot';
import { splitDev } from '../../sys/syscalls';
import { type ApiRequest, type Router, boolParam } from '../router';

export const PATH_STAT_HEADER = 'X-Docker-Container-Path-Stat';

/** Docker's types.ContainerPathStat. */
export interface ContainerPathStat {
  name: string;
  size: number;
  mode: number;
  mtime: string;
  linkTarget: string;
}

export function archiveRoutes(router: Router, engine: Engine): void {
  router.add('GET', '/containers/{id}/archive', (req, res) => getArchive(engine, req, res));
  router.add('PUT', '/containers/{id}/archive', (req, res) => putArchive(engine, req, res));
}

// ---- paths -----------------------------------------------------------------------------------

/** A container path as Docker reads it: absolute, cleaned, keeping a trailing `/` or `/.`. */
export function containerAbsPath(raw: string): string {
  const cleaned = path.posix.normalize(path.posix.join('/', raw));
  const trimmed = cleaned.length > 1 ? cleaned.replace(/\/+$/, '') : cleaned;
  if (trimmed.endsWith('/')) return trimmed;
  if (raw === '.' || raw.endsWith('/.')) return `${trimmed}/.`;
  if (raw.endsWith('/')) return `${trimmed}/`;
  return trimmed;
}

/** Go's filepath.Base: trailing slashes dropped; "/" for the root. */
function goBase(p: string): string {
  const stripped = p.replace(/\/+$/, '');
  if (!stripped) return '/';
  return stripped.slice(stripped.lastIndexOf('/') + 1);
}

function components(p: string): string[] {
  return p.split('/').filter((c) => c !== '' && c !== '.');
}

/**
 * `rel` (a container path) opened the way the container would resolve it, with errors about the
 * copied path: missing is 404, a non-directory on the way or a symlink loop is a bad request.
 */
function openInContainer<T>(shown: string, rec: ContainerRecord, open: () => T): T {
  try {
    return open();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new NotFoundError(`Could not find the file ${shown} in container ${rec.Name.replace(/^\//, '')}`);
    if (code === 'ENOTDIR') throw new InvalidArgumentError(`${shown}: a parent is not a directory`);
    if (code === 'ELOOP') throw new InvalidArgumentError(`${shown}: too many levels of symbolic links`);
    if (code === 'EXDEV') throw new NotImplementedError(`${shown} crosses a mount point inside the container: copying across mounts is not supported`);
    throw err;
  }
}

/** Go's os.FileMode bits for a stat mode (what the docker CLI's stat.Mode.IsDir() reads). */
export function goFileMode(st: Stats): number {
  let mode = st.mode & 0o777;
  if (st.mode & 0o4000) mode += 2 ** 23; // ModeSetuid
  if (st.mode & 0o2000) mode += 2 ** 22; // ModeSetgid
  if (st.mode & 0o1000) mode += 2 ** 20; // ModeSticky
  if (st.isDirectory()) mode += 2 ** 31; // ModeDir
  else if (st.isSymbolicLink()) mode += 2 ** 27; // ModeSymlink
  else if (st.isBlockDevice()) mode += 2 ** 26; // ModeDevice
  else if (st.isCharacterDevice()) mode += 2 ** 26 + 2 ** 21; // ModeDevice | ModeCharDevice
  else if (st.isFIFO()) mode += 2 ** 25; // ModeNamedPipe
  else if (st.isSocket()) mode += 2 ** 24; // ModeSocket
  return mode;
}

/** What a copied path names: `name` in the pinned directory `dir`, or `dir` itself (name null). */
interface Target {
  dir: PinnedDir;
  name: string | null;
  st: Stats;
}

/**
 * Stats a container path: its parent resolved in the container (symlinks followed, inside the
 * rootfs), its last component not followed, unless it is `.` or empty (`dir/.`, `dir/`). The
 * caller closes `target.dir`.
 */
function statPath(scope: Scope, rec: ContainerRecord, rawPath: string): { stat: ContainerPathStat; target: Target } {
  const { root, absPath } = scope;
  const cut = absPath.lastIndexOf('/');
  const base = absPath.slice(cut + 1);
  const dirOnly = base === '' || base === '.';
  const dir = openInContainer(rawPath, rec, () => openDirInRoot(root, absPath.slice(0, cut + 1)));
  try {
    const st = dirOnly ? fstatSync(dir.fd) : lstatIn(dir, base);
    if (!st) throw new NotFoundError(`Could not find the file ${rawPath} in container ${rec.Name.replace(/^\//, '')}`);
    const linkTarget = st.isSymbolicLink() ? linkTargetOf(root, dir, base, absPath) : '';
    const stat = { name: goBase(containerAbsPath(rawPath)), size: st.size, mode: goFileMode(st), mtime: st.mtime.toISOString(), linkTarget };
    return { stat, target: { dir, name: dirOnly ? null : base, st } };
  } catch (err) {
    dir.close();
    throw err;
  }
}

/**
 * The symlink `base` of `dir` fully evaluated in the container's scope, as an absolute container
 * path (the kernel's resolution, named from the fd it gave). A dangling link is its target
 * joined to the link's directory, which is what the docker CLI would compute from it.
 */
function linkTargetOf(root: PinnedDir, dir: PinnedDir, base: string, absPath: string): string {
  let fd: number;
  try {
    fd = openat2(root.fd, absPath, O_PATH, IN_ROOT);
  } catch (err) {
    if (!['ENOENT', 'ENOTDIR', 'ELOOP'].includes((err as NodeJS.ErrnoException).code ?? '')) throw err;
    const containerDir = containerPathOf(root, dir.fd) ?? path.posix.dirname(absPath);
    return path.posix.resolve(containerDir, readlinkIn(dir, base) ?? '.');
  }
  try {
    return containerPathOf(root, fd) ?? '';
  } finally {
    closeSync(fd);
  }
}

/** Bind mounts are not part of the rootfs seen from the host: refuse rather than copy the layer below. */
function checkNotInBind(rec: ContainerRecord, absPath: string): void {
  const p = absPath.replace(/\/\.?$/, '') || '/';
  for (const bind of rec.HostConfig.Binds ?? []) {
    const dest = path.posix.normalize(bind.split(':')[1] ?? '');
    if (dest && dest !== '/' && (p === dest || p.startsWith(dest + '/'))) {
      throw new NotImplementedError(`${absPath} is inside the bind mount ${bind}: copying to or from bind mounts is not supported; use the host path`);
    }
  }
}

/** Where a copied path is resolved: the root that holds it, and the path below that root. */
interface Scope {
  root: PinnedDir;
  /** The same root as a host path (what applyLayerTar extracts into). */
  rootPath: string;
  absPath: string;
  readOnly: boolean;
  close(): void;
}

/**
 * A path below one of the container's volumes lives in the volume itself: the container sees it
 * mounted there, while the rootfs seen from the host (running or not) has only the image's
 * directory. Anything else is resolved in the rootfs. Either way resolution stays in that root.
 */
function scopeOf(engine: Engine, rec: ContainerRecord, rootfs: string, root: PinnedDir, rawPath: string): Scope {
  const absPath = containerAbsPath(rawPath);
  checkNotInBind(rec, absPath);
  const p = absPath.replace(/\/\.?$/, '') || '/';
  for (const m of engine.volumes.inspectMounts(rec.Id)) {
    const dest = path.posix.normalize(m.Destination);
    if (m.Type !== 'volume' || !m.Source || dest === '/' || (p !== dest && !p.startsWith(`${dest}/`))) continue;
    const volumeRoot = pinRoot(m.Source);
    return { root: volumeRoot, rootPath: m.Source, absPath: absPath.slice(dest.length) || '/', readOnly: !m.RW, close: () => volumeRoot.close() };
  }
  return { root, rootPath: rootfs, absPath, readOnly: false, close: () => undefined };
}

function statHeader(stat: ContainerPathStat): string {
  return Buffer.from(JSON.stringify(stat)).toString('base64');
}

function requiredPath(req: ApiRequest): string {
  const p = req.query.get('path');
  if (!p) throw new InvalidArgumentError('the path query parameter is required (a path inside the container)');
  if (p.includes('\0')) throw new InvalidArgumentError('path contains a NUL byte');
  return p;
}

/**
 * Mount the container's rootfs for the duration of `fn` (counted mounts: works while it runs too),
 * pinned by fd: everything below it is opened relative to that fd.
 */
async function withRootfs<T>(engine: Engine, rec: ContainerRecord, fn: (rootfs: string, root: PinnedDir, release: () => void) => Promise<T>): Promise<T> {
  const storage: StorageDriver | undefined = engine.storage();
  if (!storage) throw new BerthError(`no storage driver: ${engine.plugins.whyMissing('storage')}`);
  const rootfs = await storage.mount(rec.Id);
  let released = false;
  let root: PinnedDir | undefined;
  const release = () => {
    if (released) return;
    released = true;
    root?.close();
    storage.unmount(rec.Id).catch((err) => engine.log.warn('unmount after archive failed', { container: rec.Id, error: (err as Error).message }));
  };
  try {
    root = pinRoot(rootfs);
    return await fn(rootfs, root, release);
  } catch (err) {
    release();
    throw err;
  }
}

function eventAttrs(rec: ContainerRecord): Record<string, string> {
  return { ...(rec.Config.Labels ?? {}), image: rec.Config.Image, name: rec.Name.replace(/^\//, '') };
}

// ---- GET / HEAD ------------------------------------------------------------------------------

async function getArchive(engine: Engine, req: ApiRequest, res: ServerResponse): Promise<void> {
  const rawPath = requiredPath(req);
  const rec = engine.containers.get(req.params.id);
  await withRootfs(engine, rec, async (rootfs, root, release) => {
    const scope = scopeOf(engine, rec, rootfs, root, rawPath);
    let stat: ContainerPathStat;
    let target: Target;
    try {
      ({ stat, target } = statPath(scope, rec, rawPath));
    } finally {
      scope.close(); // the target holds its own fd
    }
    if (req.method === 'HEAD') {
      target.dir.close();
      res.writeHead(200, { [PATH_STAT_HEADER]: statHeader(stat), 'Content-Type': 'application/x-tar' }).end();
      release();
      return;
    }
    const stream = tarTree(target, stat.name);
    res.writeHead(200, { [PATH_STAT_HEADER]: statHeader(stat), 'Content-Type': 'application/x-tar' });
    const done = () => {
      target.dir.close();
      release();
    };
    stream.once('close', done);
    stream.once('end', done);
    req.signal.addEventListener('abort', () => stream.destroy());
    stream.on('error', (err) => {
      engine.log.warn('archive stream failed', { container: rec.Id, path: rawPath, error: err.message });
      res.destroy();
      done();
    });
    stream.pipe(res);
    engine.events.publish('container', 'archive-path', rec.Id, eventAttrs(rec));
  });
}

/**
 * Tar of the target, entries named `name`, `name/child`, ...: each directory pinned before it is
 * listed, no name ever followed, file data from an O_NOFOLLOW fd and its own fstat. Whatever the
 * container swaps meanwhile, only its own files can be read; a name that changed type or went
 * away between the listing and the read is left out.
 */
function tarTree(target: Target, name: string): Readable {
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

// ---- PUT -------------------------------------------------------------------------------------

async function putArchive(engine: Engine, req: ApiRequest, res: ServerResponse): Promise<void> {
  const rawPath = requiredPath(req);
  const rec = engine.containers.get(req.params.id);
  const noOverwriteDirNonDir = boolParam(req.query, 'noOverwriteDirNonDir');
  const copyUIDGID = boolParam(req.query, 'copyUIDGID');
  if (rec.HostConfig.ReadonlyRootfs) throw new ForbiddenError(`container ${rec.Name.replace(/^\//, '')}: its rootfs is marked read-only`);
  await withRootfs(engine, rec, async (rootfs, containerRoot, release) => {
    const scope = scopeOf(engine, rec, rootfs, containerRoot, rawPath);
    try {
      await extractInto(req, rec, scope, rootfs, { rawPath, noOverwriteDirNonDir, copyUIDGID });
    } finally {
      scope.close();
      release();
    }
    engine.events.publish('container', 'extract-to-dir', rec.Id, eventAttrs(rec));
    res.writeHead(200).end();
  });
}

/** The PUT body extracted below the scope's root (the rootfs or a volume). */
async function extractInto(
  req: ApiRequest,
  rec: ContainerRecord,
  scope: Scope,
  rootfs: string,
  o: { rawPath: string; noOverwriteDirNonDir: boolean; copyUIDGID: boolean },
): Promise<void> {
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
