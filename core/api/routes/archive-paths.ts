/**
 * Paths that `docker cp` names, resolved the way the container itself sees them: by the kernel,
 * inside the rootfs (openat2 RESOLVE_IN_ROOT, core/sys/inroot.ts) or inside the volume mounted
 * there, so absolute symlinks restart at that root and `..` never climbs above it. The result is
 * held by fd: nothing here resolves a host path string twice (CVE-2018-15664).
 */
import { closeSync, fstatSync, type Stats } from 'node:fs';
import path from 'node:path';
import { InvalidArgumentError, NotFoundError, NotImplementedError } from '../../contracts/errors';
import type { ContainerRecord } from '../../containers/record';
import type { Engine } from '../../kernel/engine';
import { containerPathOf, IN_ROOT, lstatIn, O_PATH, openat2, openDirInRoot, pinRoot, readlinkIn, type PinnedDir } from '../../sys/inroot';

/** Docker's types.ContainerPathStat. */
export interface ContainerPathStat {
  name: string;
  size: number;
  mode: number;
  mtime: string;
  linkTarget: string;
}

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

export function components(p: string): string[] {
  return p.split('/').filter((c) => c !== '' && c !== '.');
}

/**
 * `rel` (a container path) opened the way the container would resolve it, with errors about the
 * copied path: missing is 404, a non-directory on the way or a symlink loop is a bad request.
 */
export function openInContainer<T>(shown: string, rec: ContainerRecord, open: () => T): T {
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
  if (st.isDirectory())
    mode += 2 ** 31; // ModeDir
  else if (st.isSymbolicLink())
    mode += 2 ** 27; // ModeSymlink
  else if (st.isBlockDevice())
    mode += 2 ** 26; // ModeDevice
  else if (st.isCharacterDevice())
    mode += 2 ** 26 + 2 ** 21; // ModeDevice | ModeCharDevice
  else if (st.isFIFO())
    mode += 2 ** 25; // ModeNamedPipe
  else if (st.isSocket()) mode += 2 ** 24; // ModeSocket
  return mode;
}

/** What a copied path names: `name` in the pinned directory `dir`, or `dir` itself (name null). */
export interface Target {
  dir: PinnedDir;
  name: string | null;
  st: Stats;
}

/**
 * Stats a container path: its parent resolved in the container (symlinks followed, inside the
 * rootfs), its last component not followed, unless it is `.` or empty (`dir/.`, `dir/`). The
 * caller closes `target.dir`.
 */
export function statPath(scope: Scope, rec: ContainerRecord, rawPath: string): { stat: ContainerPathStat; target: Target } {
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
export interface Scope {
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
export function scopeOf(engine: Engine, rec: ContainerRecord, rootfs: string, root: PinnedDir, rawPath: string): Scope {
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
