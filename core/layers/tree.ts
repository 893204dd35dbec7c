/**
 * Comparing trees: the changes of a container against its image, both as `docker diff` lines
 * and as the list of items an OCI layer tar needs (see write.ts). Two sources:
 * - diffTrees(lower, upper): two full trees (vfs: top layer copy vs container copy).
 * - overlayUpperChanges(upper, lowers): an overlay upper dir, whose whiteouts (char 0:0) and
 *   opaque directories become OCI whiteouts; `lowers` (top first) tell Added from Changed.
 * Paths in Change are absolute (`/etc/passwd`), as docker diff prints them; items are relative.
 * The upper tree may belong to a running container that changes it while it is walked: each of
 * its directories is pinned by fd before it is listed, and names in it are never followed
 * (core/sys/inroot.ts). Image layers (`lower`, `lowers`) are berth's own and do not change.
 */
import { promises as fs, constants as fsc, type Stats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { Change } from '../contracts/storage';
import { OVERLAY_OPAQUE_XATTR } from './names';
import { lstatOrNull } from './applier';
import { lstatIn, pinRoot, type PinnedDir } from '../sys/inroot';
import { syscalls as defaultSyscalls, type Syscalls } from '../sys/syscalls';

/** One thing an OCI layer tar carries: an entry read from the tree, or a whiteout. */
export type LayerItem = { kind: 'entry'; path: string } | { kind: 'whiteout'; path: string } | { kind: 'opaque'; path: string };

export interface TreeDiff {
  changes: Change[];
  items: LayerItem[];
}

const S_IFMT = 0o170000;

export function isOverlayWhiteout(st: Stats): boolean {
  return st.isCharacterDevice() && st.rdev === 0;
}

async function sortedNames(dir: string): Promise<string[]> {
  try {
    return (await fs.readdir(dir)).sort();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return [];
    throw err;
  }
}

/** Compares two trees; `lower` null means an empty image. */
export async function diffTrees(lower: string | null, upper: string): Promise<TreeDiff> {
  const out: TreeDiff = { changes: [], items: [] };
  await withPinned(pinRoot(upper), (root) => diffDir(lower, root, '', out));
  return out;
}

/** Runs `fn` on a pinned directory (null: skipped, it was swapped away), then lets it go. */
async function withPinned<T>(dir: PinnedDir | null, fn: (dir: PinnedDir) => Promise<T>): Promise<T | undefined> {
  if (!dir) return undefined;
  try {
    return await fn(dir);
  } finally {
    dir.close();
  }
}

/** `upper` is the directory at `rel` of the upper tree. */
async function diffDir(lower: string | null, upper: PinnedDir, rel: string, out: TreeDiff): Promise<boolean> {
  const upperNames = await sortedNames(upper.path());
  const lowerNames = lower ? await sortedNames(path.join(lower, rel)) : [];
  const upperSet = new Set(upperNames);
  const lowerSet = new Set(lowerNames);
  let changed = false;
  const names = [...new Set([...upperNames, ...lowerNames])].sort();
  for (const name of names) {
    const childRel = rel ? `${rel}/${name}` : name;
    // Gone since the listing counts as gone.
    const us = upperSet.has(name) ? lstatIn(upper, name) : null;
    if (!us) {
      if (!lowerSet.has(name)) continue;
      out.changes.push({ kind: 'D', path: `/${childRel}` });
      out.items.push({ kind: 'whiteout', path: childRel });
      changed = true;
      continue;
    }
    if (!lowerSet.has(name)) {
      await addAll(upper, name, childRel, us, out);
      changed = true;
      continue;
    }
    const ls = await fs.lstat(path.join(lower!, childRel));
    if (us.isDirectory() && ls.isDirectory()) {
      const sub: TreeDiff = { changes: [], items: [] };
      const childChanged = await withPinned(upper.childDir(name), (child) => diffDir(lower, child, childRel, sub));
      if (childChanged || metadataDiffers(ls, us)) {
        out.changes.push({ kind: 'C', path: `/${childRel}` }, ...sub.changes);
        out.items.push({ kind: 'entry', path: childRel }, ...sub.items);
        changed = true;
      }
      continue;
    }
    if (await entryDiffers(path.join(lower!, childRel), ls, upper.path(name), us)) {
      out.changes.push({ kind: 'C', path: `/${childRel}` });
      out.items.push({ kind: 'entry', path: childRel });
      if (us.isDirectory()) await withPinned(upper.childDir(name), (child) => addChildren(child, childRel, out));
      changed = true;
    }
  }
  return changed;
}

/** `name` of `dir` (at tree path `rel`) and everything below it, as added. */
async function addAll(dir: PinnedDir, name: string, rel: string, st: Stats, out: TreeDiff): Promise<void> {
  out.changes.push({ kind: 'A', path: `/${rel}` });
  out.items.push({ kind: 'entry', path: rel });
  if (st.isDirectory()) await withPinned(dir.childDir(name), (child) => addChildren(child, rel, out));
}

/** Everything below `dir` (at tree path `rel`), as added. */
async function addChildren(dir: PinnedDir, rel: string, out: TreeDiff): Promise<void> {
  for (const name of await sortedNames(dir.path())) {
    const st = lstatIn(dir, name);
    if (st) await addAll(dir, name, `${rel}/${name}`, st, out);
  }
}

function metadataDiffers(a: Stats, b: Stats): boolean {
  return (a.mode & S_IFMT) !== (b.mode & S_IFMT) || (a.mode & 0o7777) !== (b.mode & 0o7777) || a.uid !== b.uid || a.gid !== b.gid;
}

async function entryDiffers(aPath: string, a: Stats, bPath: string, b: Stats): Promise<boolean> {
  if (metadataDiffers(a, b)) return true;
  if (a.isSymbolicLink()) return (await fs.readlink(aPath)) !== (await fs.readlink(bPath));
  if (a.isCharacterDevice() || a.isBlockDevice()) return a.rdev !== b.rdev;
  if (!a.isFile()) return false;
  if (a.size !== b.size) return true;
  // Copies keep mtimes to within a microsecond (utimes takes a double); within that, trust them.
  if (Math.abs(a.mtimeMs - b.mtimeMs) < 0.001) return false;
  return !(await sameContent(aPath, bPath));
}

/** Never a symlink, never blocking on a fifo: the names were regular files when lstat'ed. */
const NO_FOLLOW_READ = fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK | fsc.O_NOCTTY;

/** The file at `p` opened for reading, or null when it is no longer a regular file there. */
async function openRegular(p: string): Promise<FileHandle | null> {
  let handle: FileHandle;
  try {
    handle = await fs.open(p, NO_FOLLOW_READ);
  } catch (err) {
    if (['ENOENT', 'ELOOP', 'ENXIO'].includes((err as NodeJS.ErrnoException).code ?? '')) return null;
    throw err;
  }
  if ((await handle.stat()).isFile()) return handle;
  await handle.close();
  return null;
}

/** Byte-for-byte comparison of two regular files of equal size (a name that is no longer one differs). */
export async function sameContent(aPath: string, bPath: string): Promise<boolean> {
  const a = await openRegular(aPath);
  const b = a && (await openRegular(bPath));
  if (!a || !b) {
    await a?.close();
    return false;
  }
  try {
    const bufA = Buffer.allocUnsafe(1 << 16);
    const bufB = Buffer.allocUnsafe(1 << 16);
    for (;;) {
      const [ra, rb] = await Promise.all([a.read(bufA, 0, bufA.length, null), b.read(bufB, 0, bufB.length, null)]);
      if (ra.bytesRead !== rb.bytesRead) return false;
      if (ra.bytesRead === 0) return true;
      if (!bufA.subarray(0, ra.bytesRead).equals(bufB.subarray(0, rb.bytesRead))) return false;
    }
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
}

/** The changes an overlay upper dir holds over `lowers` (layer dirs, topmost first). */
export async function overlayUpperChanges(upper: string, lowers: string[], sys: Syscalls = defaultSyscalls): Promise<TreeDiff> {
  const out: TreeDiff = { changes: [], items: [] };
  /** `dir` is the upper dir's directory at `rel`. */
  const walk = async (dir: PinnedDir, rel: string): Promise<void> => {
    for (const name of await sortedNames(dir.path())) {
      const childRel = rel ? `${rel}/${name}` : name;
      const hostPath = dir.path(name);
      const st = lstatIn(dir, name);
      if (!st) continue; // gone since the listing
      if (isOverlayWhiteout(st)) {
        if (await existsInLowers(lowers, childRel)) {
          out.changes.push({ kind: 'D', path: `/${childRel}` });
          out.items.push({ kind: 'whiteout', path: childRel });
        }
        continue;
      }
      const inLower = await existsInLowers(lowers, childRel);
      out.changes.push({ kind: inLower ? 'C' : 'A', path: `/${childRel}` });
      out.items.push({ kind: 'entry', path: childRel });
      if (st.isDirectory()) {
        if (inLower && sys.lgetxattr(hostPath, OVERLAY_OPAQUE_XATTR)?.toString() === 'y') {
          out.items.push({ kind: 'opaque', path: childRel });
        }
        await withPinned(dir.childDir(name), (child) => walk(child, childRel));
      }
    }
  };
  await withPinned(pinRoot(upper), (root) => walk(root, ''));
  return out;
}

/** Whether `rel` is visible in the stack of overlay layer dirs `lowers` (topmost first). */
export async function existsInLowers(lowers: string[], rel: string, sys: Syscalls = defaultSyscalls): Promise<boolean> {
  const parts = rel.split('/');
  for (const layer of lowers) {
    let hidden = false;
    for (let i = 1; i <= parts.length; i++) {
      const p = path.join(layer, ...parts.slice(0, i));
      const st = await lstatOrNull(p);
      if (!st) break;
      if (isOverlayWhiteout(st)) return false;
      if (i === parts.length) return true;
      if (!st.isDirectory()) return false;
      if (sys.lgetxattr(p, OVERLAY_OPAQUE_XATTR)?.toString() === 'y') hidden = true;
    }
    if (hidden) return false;
  }
  return false;
}
