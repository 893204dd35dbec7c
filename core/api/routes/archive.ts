/**
 * `docker cp` both ways: HEAD/GET/PUT /containers/{id}/archive?path=...
 *
 * - HEAD stats a path; GET streams it as a tar whose entries start with the path's base name;
 *   both carry `X-Docker-Container-Path-Stat` (base64 JSON {name,size,mode,mtime,linkTarget},
 *   mode in Go's os.FileMode bits, which the docker CLI decodes).
 * - PUT extracts a tar into a directory of the container.
 *
 * Every path is resolved inside the container's rootfs as the container itself would see it
 * (core/layers/resolve.ts): absolute symlinks restart at the rootfs, `..` never climbs above it.
 * The tar of a PUT is rewritten (names under the destination, owners) and applied by the same
 * hostile-input code that unpacks image layers, against the rootfs as its root, so no entry can
 * land outside the container. Works for stopped containers too: the rootfs is mounted (counted)
 * for the length of the request.
 */
import { constants as fsc, promises as fs, type Stats } from 'node:fs';
import type { ServerResponse } from 'node:http';
import path from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as tar from 'tar-stream';
import { BerthError, InvalidArgumentError, NotFoundError } from '../../contracts/errors';
import type { StorageDriver } from '../../contracts/storage';
import type { ContainerRecord } from '../../containers/record';
import { resolveUser } from '../../containers/user';
import type { Engine } from '../../kernel/engine';
import { applyLayerTar } from '../../layers/apply';
import { resolveInRoot } from '../../layers/resolve';
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

/** The path's parent resolved inside the rootfs (symlinks followed), its last component not. */
async function resolveForStat(rootfs: string, absPath: string): Promise<{ hostPath: string; dirOnly: boolean }> {
  const cut = absPath.lastIndexOf('/');
  const dir = absPath.slice(0, cut + 1);
  const base = absPath.slice(cut + 1);
  const parent = await resolveQuietly(rootfs, components(dir), true, absPath);
  const dirOnly = base === '' || base === '.';
  return { hostPath: dirOnly ? parent.hostPath : path.join(parent.hostPath, base), dirOnly };
}

/** resolveInRoot, with its layer-flavoured errors turned into errors about the copied path. */
async function resolveQuietly(rootfs: string, comps: string[], followFinal: boolean, shown: string) {
  try {
    return await resolveInRoot(rootfs, comps, followFinal);
  } catch (err) {
    if ((err as BerthError).status === 400) throw new InvalidArgumentError(`${shown}: ${(err as Error).message.replace(/^invalid layer: /, '')}`);
    throw err;
  }
}

async function lstatOrNull(p: string): Promise<Stats | null> {
  try {
    return await fs.lstat(p);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return null;
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

interface StatResult {
  stat: ContainerPathStat;
  st: Stats;
  hostPath: string;
}

/**
 * Where a container path lives: below one of its volumes, in the volume itself (the container's
 * view has it mounted there; the rootfs seen from the host does not, running or not); else in the
 * rootfs. Resolution then stays inside that root.
 */
function scopeOf(engine: Engine, rec: ContainerRecord, rootfs: string, absPath: string): { root: string; absPath: string; readOnly?: boolean } {
  const p = absPath.replace(/\/\.?$/, '') || '/';
  for (const m of engine.volumes.inspectMounts(rec.Id)) {
    const dest = path.posix.normalize(m.Destination);
    if (m.Type === 'volume' && m.Source && dest !== '/' && (p === dest || p.startsWith(dest + '/'))) return { root: m.Source, absPath: absPath.slice(dest.length) || '/', readOnly: !m.RW };
  }
  return { root: rootfs, absPath };
}

async function statPath(engine: Engine, containerRootfs: string, rec: ContainerRecord, rawPath: string): Promise<StatResult> {
  checkNotInBind(rec, containerAbsPath(rawPath));
  const { root: rootfs, absPath } = scopeOf(engine, rec, containerRootfs, containerAbsPath(rawPath));
  const { hostPath, dirOnly } = await resolveForStat(rootfs, absPath);
  const st = await lstatOrNull(hostPath);
  if (!st) throw new NotFoundError(`Could not find the file ${rawPath} in container ${rec.Name.replace(/^\//, '')}`);
  if (dirOnly && !st.isDirectory()) throw new InvalidArgumentError(`${rawPath}: not a directory`);
  let linkTarget = '';
  if (st.isSymbolicLink()) {
    // The link fully evaluated in the container's scope, as an absolute container path.
    const full = await resolveQuietly(rootfs, components(absPath), true, rawPath);
    linkTarget = '/' + full.components.join('/');
  }
  return { stat: { name: goBase(absPath), size: st.size, mode: goFileMode(st), mtime: st.mtime.toISOString(), linkTarget }, st, hostPath };
}

/** Bind mounts are not part of the rootfs seen from the host: refuse rather than copy the layer below. */
function checkNotInBind(rec: ContainerRecord, absPath: string): void {
  const p = absPath.replace(/\/\.?$/, '') || '/';
  for (const bind of rec.HostConfig.Binds ?? []) {
    const dest = path.posix.normalize(bind.split(':')[1] ?? '');
    if (dest && dest !== '/' && (p === dest || p.startsWith(dest + '/'))) {
      throw new BerthError(`${absPath} is inside the bind mount ${bind}: copying to or from bind mounts is not supported; use the host path`, 501);
    }
  }
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

/** Mount the container's rootfs for the duration of `fn` (counted mounts: works while it runs too). */
async function withRootfs<T>(engine: Engine, rec: ContainerRecord, fn: (rootfs: string, release: () => void) => Promise<T>): Promise<T> {
  const storage: StorageDriver | undefined = engine.storage();
  if (!storage) throw new BerthError(`no storage driver: ${engine.plugins.whyMissing('storage')}`, 500);
  const rootfs = await storage.mount(rec.Id);
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    storage.unmount(rec.Id).catch((err) => engine.log.warn('unmount after archive failed', { container: rec.Id, error: (err as Error).message }));
  };
  try {
    return await fn(rootfs, release);
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
  await withRootfs(engine, rec, async (rootfs, release) => {
    const { stat, st, hostPath } = await statPath(engine, rootfs, rec, rawPath);
    if (req.method === 'HEAD') {
      res.writeHead(200, { [PATH_STAT_HEADER]: statHeader(stat), 'Content-Type': 'application/x-tar' }).end();
      release();
      return;
    }
    const stream = tarTree(hostPath, st, stat.name);
    res.writeHead(200, { [PATH_STAT_HEADER]: statHeader(stat), 'Content-Type': 'application/x-tar' });
    const done = () => release();
    stream.once('close', done);
    stream.once('end', done);
    req.signal.addEventListener('abort', () => stream.destroy());
    stream.on('error', (err) => {
      engine.log.warn('archive stream failed', { container: rec.Id, path: rawPath, error: err.message });
      res.destroy();
      release();
    });
    stream.pipe(res);
    engine.events.publish('container', 'archive-path', rec.Id, eventAttrs(rec));
  });
}

/** Tar of `hostPath` (not following links), entries named `name`, `name/child`, ... */
function tarTree(hostPath: string, st: Stats, name: string): Readable {
  const pack = tar.pack();
  const out = new PassThrough();
  const links = new Map<string, string>();
  const join = (a: string, b: string) => (a.endsWith('/') ? a + b : `${a}/${b}`);
  const add = async (p: string, s: Stats, entryName: string): Promise<void> => {
    if (out.destroyed) return;
    const header: Partial<tar.Header> & { name: string } = { name: entryName, mode: s.mode & 0o7777, uid: s.uid, gid: s.gid, mtime: s.mtime };
    if (s.isDirectory()) {
      await entry(pack, { ...header, type: 'directory' });
      for (const child of (await fs.readdir(p)).sort()) {
        const cp = path.join(p, child);
        const cs = await lstatOrNull(cp);
        if (cs) await add(cp, cs, join(entryName, child));
      }
    } else if (s.isSymbolicLink()) {
      await entry(pack, { ...header, type: 'symlink', linkname: await fs.readlink(p) });
    } else if (s.isFile()) {
      const key = `${s.dev}:${s.ino}`;
      const first = s.nlink > 1 ? links.get(key) : undefined;
      if (first !== undefined) {
        await entry(pack, { ...header, type: 'link', linkname: first });
        return;
      }
      if (s.nlink > 1) links.set(key, entryName);
      // O_NOFOLLOW: a file swapped for a symlink since the lstat is not read through.
      const handle = await fs.open(p, fsc.O_RDONLY | fsc.O_NOFOLLOW);
      try {
        const sink = pack.entry({ ...header, type: 'file', size: s.size });
        await pipeline(handle.createReadStream({ start: 0, end: Math.max(0, s.size - 1), autoClose: false }), sink as unknown as NodeJS.WritableStream);
      } finally {
        await handle.close();
      }
    } else if (s.isCharacterDevice() || s.isBlockDevice()) {
      const { major, minor } = splitDev(s.rdev);
      await entry(pack, { ...header, type: s.isCharacterDevice() ? 'character-device' : 'block-device', devmajor: major, devminor: minor });
    } else if (s.isFIFO()) {
      await entry(pack, { ...header, type: 'fifo' });
    }
    // Sockets cannot be archived; docker leaves them out too.
  };
  pack.pipe(out);
  add(hostPath, st, name).then(
    () => pack.finalize(),
    (err: Error) => {
      pack.destroy(err);
      out.destroy(err);
    },
  );
  return out;
}

function entry(pack: tar.Pack, header: Partial<tar.Header> & { name: string }): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (err?: Error | null) => (err ? reject(err) : resolve());
    pack.entry(header, done);
  });
}

// ---- PUT -------------------------------------------------------------------------------------

async function putArchive(engine: Engine, req: ApiRequest, res: ServerResponse): Promise<void> {
  const rawPath = requiredPath(req);
  const rec = engine.containers.get(req.params.id);
  const noOverwriteDirNonDir = boolParam(req.query, 'noOverwriteDirNonDir');
  const copyUIDGID = boolParam(req.query, 'copyUIDGID');
  if (rec.HostConfig.ReadonlyRootfs) throw new BerthError(`container ${rec.Name.replace(/^\//, '')}: its rootfs is marked read-only`, 403);
  await withRootfs(engine, rec, async (containerRootfs, release) => {
    checkNotInBind(rec, containerAbsPath(rawPath));
    const { root: rootfs, absPath, readOnly } = scopeOf(engine, rec, containerRootfs, containerAbsPath(rawPath));
    if (readOnly) throw new BerthError(`container ${rec.Name.replace(/^\//, '')}: ${rawPath} is on a read-only volume`, 403);
    // Unlike a stat, the destination's last component is followed too: extracting "to" a
    // symlink that points at a directory extracts into that directory (as Docker does).
    const dest = await resolveQuietly(rootfs, components(absPath), true, rawPath);
    const st = await lstatOrNull(dest.hostPath);
    if (!st) throw new NotFoundError(`Could not find the file ${rawPath} in container ${rec.Name.replace(/^\//, '')}`);
    if (!st.isDirectory()) throw new InvalidArgumentError(`extraction point is not a directory: ${rawPath}`);
    // Owners: root by default (what docker documents); with copyUIDGID the container's user,
    // or the archive's own owners when the container has no user configured.
    let owner: { uid: number; gid: number } | undefined = { uid: 0, gid: 0 };
    if (copyUIDGID) owner = rec.Config.User ? await resolveUser(containerRootfs, rec.Config.User) : undefined;
    const rewritten = rewriteArchive(req.raw, { rootfs, dest: dest.components, owner, noOverwriteDirNonDir, shownDest: rawPath });
    req.signal.addEventListener('abort', () => rewritten.destroy(new BerthError('client went away', 499)));
    try {
      await applyLayerTar(rootfs, rewritten, { whiteouts: 'merge', chown: process.getuid?.() === 0 });
    } catch (err) {
      const e = err as BerthError;
      if (e.status && e.status < 500) throw new BerthError(`extracting into ${rawPath}: ${e.message.replace(/^invalid layer: /, '')}`, e.status);
      if (/Invalid tar header|Unexpected end of data|Header exceeds/.test(e.message)) throw new InvalidArgumentError(`extracting into ${rawPath}: not a valid tar archive: ${e.message}`);
      throw err;
    } finally {
      release();
    }
    engine.events.publish('container', 'extract-to-dir', rec.Id, eventAttrs(rec));
    res.writeHead(200).end();
  });
}

interface RewriteOptions {
  rootfs: string;
  /** The destination directory, as components below the rootfs. */
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
  const parent = await resolveQuietly(o.rootfs, [...o.dest, ...comps.slice(0, -1)], true, name);
  const existing = await lstatOrNull(path.join(parent.hostPath, comps[comps.length - 1]));
  if (!existing) return;
  const shown = '/' + [...parent.components, comps[comps.length - 1]].join('/');
  if (existing.isDirectory() && !isDir) throw new InvalidArgumentError(`cannot overwrite directory ${JSON.stringify(shown)} with non-directory ${JSON.stringify(name)}`);
  if (!existing.isDirectory() && isDir) throw new InvalidArgumentError(`cannot overwrite non-directory ${JSON.stringify(shown)} with directory ${JSON.stringify(name)}`);
}
