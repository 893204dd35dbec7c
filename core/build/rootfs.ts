/**
 * Writing COPY/ADD sources into a mounted rootfs, every destination resolved inside the rootfs
 * (core/layers/resolve.ts) so a symlink in the image cannot send a file out of it.
 */
import { promises as fs, constants as fsc } from 'node:fs';
import * as path from 'node:path';
import { resolveInRoot } from '../layers/resolve';
import { CopyError } from './errors';
import type { CopyItem } from './sources';

export interface Owner {
  uid: number;
  gid: number;
}

/**
 * mkdir -p of `components` inside `rootfs`, resolving every existing parent inside the root;
 * returns the resolved components. New directories are 0755 and owned by `owner`.
 */
export async function mkdirInRoot(rootfs: string, components: string[], owner: Owner): Promise<string[]> {
  const { components: resolved } = await resolveInRoot(rootfs, components, true);
  let current = rootfs;
  for (const part of resolved) {
    current = path.join(current, part);
    try {
      await fs.mkdir(current, 0o755);
      await fs.lchown(current, owner.uid, owner.gid);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const st = await fs.lstat(current);
      if (!st.isDirectory()) throw new CopyError(`cannot create directory /${resolved.join('/')}: /${path.relative(rootfs, current)} exists and is not a directory`);
    }
  }
  return resolved;
}

/** Whether a path inside the rootfs exists and is a directory (symlinks followed inside the root). */
export async function isDirInRoot(rootfs: string, components: string[]): Promise<boolean> {
  const { hostPath } = await resolveInRoot(rootfs, components, true);
  const st = await fs.stat(hostPath).catch(() => undefined);
  return !!st?.isDirectory();
}

export interface WriteOptions {
  owner?: Owner;
  /** --chmod: octal mode for every copied file and directory. */
  mode?: number;
}

/** Write one item at `destComponents` inside the rootfs (resolved again there, never followed out). */
export async function writeItem(rootfs: string, destComponents: string[], item: CopyItem, opts: WriteOptions): Promise<void> {
  const owner = opts.owner ?? { uid: 0, gid: 0 };
  const parent = await mkdirInRoot(rootfs, destComponents.slice(0, -1), owner);
  const target = path.join(rootfs, ...parent, destComponents[destComponents.length - 1]);
  const existing = await fs.lstat(target).catch(() => undefined);
  const mode = opts.mode ?? item.mode;
  if (item.type === 'dir') {
    if (existing?.isDirectory()) {
      if (opts.owner) await fs.lchown(target, owner.uid, owner.gid);
      return;
    }
    if (existing) await fs.rm(target, { force: true });
    await fs.mkdir(target, mode);
    await fs.chmod(target, mode);
    await fs.lchown(target, owner.uid, owner.gid);
    return;
  }
  if (existing?.isDirectory()) throw new CopyError(`cannot overwrite directory /${[...parent, path.basename(target)].join('/')} with a ${item.type === 'file' ? 'file' : 'symlink'}`);
  if (existing) await fs.unlink(target);
  if (item.type === 'symlink') {
    await fs.symlink(item.link!, target);
    await fs.lchown(target, owner.uid, owner.gid);
    return;
  }
  await fs.copyFile(item.host, target, fsc.COPYFILE_EXCL);
  await fs.chmod(target, mode);
  await fs.lchown(target, owner.uid, owner.gid);
  await fs.utimes(target, item.mtime, item.mtime);
}
