/** A container's filesystem seen from outside: its changes (`docker diff`) and all of it as a tar (`docker export`). */
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import type { Change } from '../contracts/storage';
import { diffTrees } from '../layers/tree';
import { writeLayerTar } from '../layers/write';
import type { ContainerContext } from './context';

/** Mount points the launcher creates in a container's writable layer. */
const INIT_PATHS = ['/dev', '/proc', '/sys', '/etc/hostname', '/etc/hosts', '/etc/resolv.conf', '/dev/shm', '/dev/pts', '/dev/mqueue'];

/**
 * The container's changes, less the mount points berth itself made for it (Docker keeps those
 * in a hidden init layer, so they never show in `docker diff` either).
 */
export async function changesOf(ctx: ContainerContext, ref: string): Promise<Change[]> {
  const changes = await ctx.storage().changes(ctx.store.get(ref).Id);
  const own = changes.filter((c) => !(c.kind === 'A' && INIT_PATHS.some((p) => c.path === p || c.path.startsWith(p + '/'))));
  // A directory changed only by berth's mount points in it (/etc for hosts, resolv.conf) is not the user's change.
  const below = (dir: string) => own.some((c) => c.path.startsWith(`${dir}/`));
  return own.filter((c) => !(INIT_PATHS.some((p) => path.posix.dirname(p) === c.path) && !below(c.path)));
}

/** The container's whole filesystem as a tar stream; the rootfs stays mounted until it ends. */
export async function exportContainer(ctx: ContainerContext, ref: string): Promise<Readable> {
  const rec = ctx.store.get(ref);
  const storage = ctx.storage();
  const rootfs = await storage.mount(rec.Id);
  try {
    const { items } = await diffTrees(null, rootfs);
    const stream = writeLayerTar(rootfs, items);
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      storage.unmount(rec.Id).catch(() => undefined);
    };
    stream.once('end', release);
    stream.once('close', release);
    stream.once('error', release);
    return stream;
  } catch (err) {
    await storage.unmount(rec.Id).catch(() => undefined);
    throw err;
  }
}
