/**
 * Comparing trees: the changes of a container against its image, both as `docker diff` lines
 * and as the list of items an OCI layer tar needs (see write.ts). Two sources:
 * - diffTrees(lower, upper): two full trees (vfs: top layer copy vs container copy).
 * - overlayUpperChanges(upper, lowers): an overlay upper dir, whose whiteouts (char 0:0) and
 *   opaque directories become OCI whiteouts; `lowers` (top first) tell Added from Changed.
 * Paths in Change are absolute (`/etc/passwd`), as docker diff prints them; items are relative.
 */
import { promises as fs, type Stats } from 'node:fs';
import path from 'node:path';
import type { Change } from '../contracts/storage';
import { OVERLAY_OPAQUE_XATTR } from './names';
import { lstatOrNull } from './apply';
import { syscalls as defaultSyscalls, type Syscalls } from '../sys/syscalls';

/** One thing an OCI layer tar carries: an entry read from the tree, or a whiteout. */
export type LayerItem =
  | { kind: 'entry'; path: string }
  | { kind: 'whiteout'; path: string }
  | { kind: 'opaque'; path: string };

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
  await diffDir(lower, upper, '', out);
  return out;
}

async function diffDir(lower: string | null, upper: string, rel: string, out: TreeDiff): Promise<boolean> {
  const upperNames = await sortedNames(path.join(upper, rel));
  const lowerNames = lower ? await sortedNames(path.join(lower, rel)) : [];
  const upperSet = new Set(upperNames);
  const lowerSet = new Set(lowerNames);
  let changed = false;
  const names = [...new Set([...upperNames, ...lowerNames])].sort();
  for (const name of names) {
    const childRel = rel ? `${rel}/${name}` : name;
    if (!upperSet.has(name)) {
      out.changes.push({ kind: 'D', path: `/${childRel}` });
      out.items.push({ kind: 'whiteout', path: childRel });
      changed = true;
      continue;
    }
    const us = await fs.lstat(path.join(upper, childRel));
    if (!lowerSet.has(name)) {
      await addAll(upper, childRel, us, out);
      changed = true;
      continue;
    }
    const ls = await fs.lstat(path.join(lower!, childRel));
    if (us.isDirectory() && ls.isDirectory()) {
      const sub: TreeDiff = { changes: [], items: [] };
      const childChanged = await diffDir(lower, upper, childRel, sub);
      if (childChanged || metadataDiffers(ls, us)) {
        out.changes.push({ kind: 'C', path: `/${childRel}` }, ...sub.changes);
        out.items.push({ kind: 'entry', path: childRel }, ...sub.items);
        changed = true;
      }
      continue;
    }
    if (await entryDiffers(path.join(lower!, childRel), ls, path.join(upper, childRel), us)) {
      out.changes.push({ kind: 'C', path: `/${childRel}` });
      out.items.push({ kind: 'entry', path: childRel });
      if (us.isDirectory()) await addChildren(upper, childRel, out);
      changed = true;
    }
  }
  return changed;
}

async function addAll(root: string, rel: string, st: Stats, out: TreeDiff): Promise<void> {
  out.changes.push({ kind: 'A', path: `/${rel}` });
  out.items.push({ kind: 'entry', path: rel });
  if (st.isDirectory()) await addChildren(root, rel, out);
}

async function addChildren(root: string, rel: string, out: TreeDiff): Promise<void> {
  for (const name of await sortedNames(path.join(root, rel))) {
    const childRel = `${rel}/${name}`;
    await addAll(root, childRel, await fs.lstat(path.join(root, childRel)), out);
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

/** Byte-for-byte comparison of two files of equal size. */
export async function sameContent(aPath: string, bPath: string): Promise<boolean> {
  const [a, b] = await Promise.all([fs.open(aPath, 'r'), fs.open(bPath, 'r')]);
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
  const walk = async (rel: string): Promise<void> => {
    for (const name of await sortedNames(path.join(upper, rel))) {
      const childRel = rel ? `${rel}/${name}` : name;
      const hostPath = path.join(upper, childRel);
      const st = await fs.lstat(hostPath);
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
        await walk(childRel);
      }
    }
  };
  await walk('');
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
