/**
 * A StorageDriver that keeps its bookkeeping in memory: layers are consumed and counted, not
 * unpacked; each container's "rootfs" is an empty scratch directory (what the manager needs to
 * resolve users and working dirs). For lifecycle tests without root or overlayfs.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import * as tar from 'tar-stream';
import { NotFoundError } from '../contracts/errors';
import type { Change, StorageDriver, StorageUsage } from '../contracts/storage';

export class MemoryStorage implements StorageDriver {
  readonly name = 'memory';
  readonly parallelApply = true;
  readonly layers = new Map<string, { parent: string | null; size: number }>();
  readonly containers = new Map<string, { top: string | null; mounts: number }>();

  /** `scratch`: where the containers' empty root directories go. */
  constructor(private readonly scratch: string) {}

  async applyLayer(chainId: string, parentChainId: string | null, stream: Readable): Promise<{ size: number }> {
    if (parentChainId && !this.layers.has(parentChainId)) throw new NotFoundError(`layer ${parentChainId} is not stored`);
    let size = 0;
    for await (const chunk of stream) size += (chunk as Buffer).length;
    this.layers.set(chainId, { parent: parentChainId, size });
    return { size };
  }

  async hasLayer(chainId: string): Promise<boolean> {
    return this.layers.has(chainId);
  }

  async removeLayer(chainId: string): Promise<void> {
    this.layers.delete(chainId);
  }

  async create(containerId: string, topChainId: string | null): Promise<void> {
    if (!this.containers.has(containerId)) this.containers.set(containerId, { top: topChainId, mounts: 0 });
  }

  async mount(containerId: string): Promise<string> {
    const c = this.containers.get(containerId);
    if (!c) throw new NotFoundError(`no writable layer for container ${containerId}`);
    c.mounts++;
    const dir = path.join(this.scratch, containerId);
    await fs.mkdir(dir, { recursive: true });
    return dir;
  }

  async unmount(containerId: string): Promise<void> {
    const c = this.containers.get(containerId);
    if (c && c.mounts > 0) c.mounts--;
  }

  async remove(containerId: string): Promise<void> {
    this.containers.delete(containerId);
    await fs.rm(path.join(this.scratch, containerId), { recursive: true, force: true });
  }

  async diff(): Promise<Readable> {
    const pack = tar.pack();
    pack.finalize();
    return pack as unknown as Readable;
  }

  async changes(): Promise<Change[]> {
    return [];
  }

  async usage(): Promise<StorageUsage> {
    return {
      layers: Object.fromEntries([...this.layers].map(([id, l]) => [id, l.size])),
      containers: Object.fromEntries([...this.containers.keys()].map((id) => [id, 0])),
    };
  }
}
