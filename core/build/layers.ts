/**
 * The storage side of a build: base images unpacked into the storage driver, and throwaway
 * writable layers (storage driver create/mount, no container record) that COPY, ADD and WORKDIR
 * write into before their diff is stored as a layer.
 */
import { randomBytes } from 'node:crypto';
import type { StorageDriver } from '../contracts/storage';
import { BerthError } from '../contracts/errors';
import type { ImageRecord } from '../images/store';
import { type StoredLayer, storeLayer } from '../images/store-layer';
import type { BuilderDeps } from './options';

/** A scratch layer after its callback ran: `diff()` stores its changes as a layer, `discard()` drops it; both remove it. */
export interface ScratchLayer<T> {
  value: T;
  diff: () => Promise<StoredLayer>;
  discard: () => Promise<void>;
}

export class BuildLayers {
  constructor(private readonly deps: Pick<BuilderDeps, 'content' | 'storage' | 'unpacker' | 'log'>) {}

  storage(): StorageDriver {
    const s = this.deps.storage();
    if (!s) throw new BerthError('no storage driver is configured: cannot build');
    return s;
  }

  /** Make sure every layer of an image is in the storage driver (after a driver switch, say). */
  async ensureUnpacked(rec: ImageRecord): Promise<void> {
    const storage = this.storage();
    const top = rec.chainIds[rec.chainIds.length - 1];
    if (!top || (await storage.hasLayer(top))) return;
    const unpacker = this.deps.unpacker();
    if (!unpacker) throw new BerthError('no layer unpacker configured');
    await unpacker.unpack(
      rec.layers.map((blob, i) => ({ blob, diffId: rec.diffIds[i], chainId: rec.chainIds[i], parent: i ? rec.chainIds[i - 1] : null })),
      () => undefined,
    );
  }

  /** A throwaway writable layer over `topChainId`, mounted while `fn` runs. */
  async withScratchLayer<T>(topChainId: string | null, fn: (rootfs: string) => Promise<T>): Promise<ScratchLayer<T>> {
    const storage = this.storage();
    const id = `build-${randomBytes(12).toString('hex')}`;
    await storage.create(id, topChainId);
    let removed = false;
    const discard = async () => {
      if (removed) return;
      removed = true;
      await storage.remove(id).catch((err) => this.deps.log.warn('removing a build layer failed', { id, error: (err as Error).message }));
    };
    try {
      const rootfs = await storage.mount(id);
      let value: T;
      try {
        value = await fn(rootfs);
      } finally {
        await storage.unmount(id).catch(() => undefined);
      }
      const diff = async () => {
        try {
          return await storeLayer(this.deps.content, await storage.diff(id));
        } finally {
          await discard();
        }
      };
      return { value, diff, discard };
    } catch (err) {
      await discard();
      throw err;
    }
  }
}
