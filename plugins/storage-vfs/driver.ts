/**
 * vfs: every layer is a full copy of its parent with its changeset merged in, and a container
 * is a full copy of its top layer. Slow and space-hungry, but it needs no kernel support at all,
 * and it is the reference the overlay driver is compared against.
 *
 * On disk (stateDir): layers/<hex>/{root/,parent}, containers/<id>/{root/,image}, and
 * layers/tmp-* / containers/tmp-* while something is being built (removed by recover).
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import {
  ConflictError,
  NotFoundError,
  applyLayerTarThreaded,
  BackgroundRemover,
  chainIdHex,
  checkContainerId,
  diffTrees,
  diskUsage,
  usageByEntry,
  drain,
  removeOrQuarantine,
  removeTree,
  writeLayerTar,
  type Change,
  type StorageDriver,
  type StorageUsage,
  type Quarantine,
  type Syscalls,
  markTopDir,
} from '../../core/plugin';
import { copyTree } from './copy';

export interface VfsConfig {
  /** File operations in flight while copying a tree. */
  copyConcurrency: number;
}

export class VfsDriver implements StorageDriver {
  readonly name = 'vfs';
  readonly parallelApply = false;
  private readonly layersDir: string;
  private readonly containersDir: string;
  private readonly mounts = new Map<string, number>();
  private readonly remover: BackgroundRemover;

  /** `quarantine`: where what cannot be removed goes (`<root>/quarantine`), so removal and start go on. */
  constructor(
    stateDir: string,
    private readonly sys: Syscalls,
    private readonly config: VfsConfig,
    private readonly quarantine: Quarantine = { dir: path.join(stateDir, 'quarantine') },
  ) {
    this.layersDir = path.join(stateDir, 'layers');
    this.containersDir = path.join(stateDir, 'containers');
    this.remover = new BackgroundRemover(quarantine);
  }

  async init(): Promise<void> {
    await fs.mkdir(this.layersDir, { recursive: true, mode: 0o700 });
    await fs.mkdir(this.containersDir, { recursive: true, mode: 0o700 });
    // Each layer and container tree in a block group of its own (ext4: creates skip fewer freed inodes).
    for (const dir of [this.layersDir, this.containersDir]) markTopDir(dir);
  }

  private layerRoot(chainId: string): string {
    return path.join(this.layersDir, chainIdHex(chainId), 'root');
  }

  private containerDir(id: string): string {
    return path.join(this.containersDir, checkContainerId(id));
  }

  async applyLayer(chainId: string, parentChainId: string | null, tar: Readable): Promise<{ size: number }> {
    const hex = chainIdHex(chainId);
    const finalDir = path.join(this.layersDir, hex);
    if (await this.hasLayer(chainId)) {
      await drain(tar);
      return { size: await diskUsage(finalDir) };
    }
    if (parentChainId !== null && !(await this.hasLayer(parentChainId))) {
      tar.destroy();
      throw new NotFoundError(`parent layer ${parentChainId} of ${chainId} is not stored`);
    }
    const tmp = await fs.mkdtemp(path.join(this.layersDir, 'tmp-'));
    try {
      const root = path.join(tmp, 'root');
      if (parentChainId === null) await fs.mkdir(root, 0o755);
      else await copyTree(this.layerRoot(parentChainId), root, { sys: this.sys, concurrency: this.config.copyConcurrency });
      await applyLayerTarThreaded(root, tar, { whiteouts: 'merge', ownTree: true, syscalls: this.sys });
      await fs.writeFile(path.join(tmp, 'parent'), parentChainId ?? '');
      await fs.rename(tmp, finalDir);
    } catch (err) {
      tar.destroy();
      await removeTree(tmp);
      throw err;
    }
    return { size: await diskUsage(finalDir) };
  }

  async hasLayer(chainId: string): Promise<boolean> {
    return exists(this.layerRoot(chainId));
  }

  async removeLayer(chainId: string): Promise<void> {
    const dir = path.join(this.layersDir, chainIdHex(chainId));
    // Rename first so a crash mid-delete never leaves a half layer under its real name.
    const doomed = path.join(this.layersDir, `tmp-rm-${chainIdHex(chainId)}`);
    try {
      await fs.rename(dir, doomed);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    await removeOrQuarantine(doomed, this.quarantine);
  }

  async create(containerId: string, topChainId: string | null): Promise<void> {
    const dir = this.containerDir(containerId);
    if (await exists(dir)) {
      const image = await fs.readFile(path.join(dir, 'image'), 'utf8');
      if (image !== (topChainId ?? '')) throw new ConflictError(`container ${containerId} already exists on another image`);
      return;
    }
    if (topChainId !== null && !(await this.hasLayer(topChainId))) throw new NotFoundError(`layer ${topChainId} is not stored`);
    const tmp = await fs.mkdtemp(path.join(this.containersDir, 'tmp-'));
    try {
      const root = path.join(tmp, 'root');
      if (topChainId === null) await fs.mkdir(root, 0o755);
      else await copyTree(this.layerRoot(topChainId), root, { sys: this.sys, concurrency: this.config.copyConcurrency });
      await fs.writeFile(path.join(tmp, 'image'), topChainId ?? '');
      await fs.rename(tmp, dir);
    } catch (err) {
      await removeTree(tmp);
      throw err;
    }
  }

  private async requireContainer(containerId: string): Promise<string> {
    const dir = this.containerDir(containerId);
    if (!(await exists(dir))) throw new NotFoundError(`no storage for container ${containerId}`);
    return dir;
  }

  async mount(containerId: string): Promise<string> {
    const dir = await this.requireContainer(containerId);
    this.mounts.set(containerId, (this.mounts.get(containerId) ?? 0) + 1);
    return path.join(dir, 'root');
  }

  async unmount(containerId: string): Promise<void> {
    const count = this.mounts.get(containerId) ?? 0;
    if (count <= 1) this.mounts.delete(containerId);
    else this.mounts.set(containerId, count - 1);
  }

  async remove(containerId: string): Promise<void> {
    const dir = this.containerDir(containerId);
    this.mounts.delete(containerId);
    const doomed = path.join(this.containersDir, `tmp-rm-${containerId}`);
    try {
      await fs.rename(dir, doomed);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    this.remover.discard(doomed);
  }

  private async treeDiff(containerId: string) {
    const dir = await this.requireContainer(containerId);
    const image = await fs.readFile(path.join(dir, 'image'), 'utf8');
    const lower = image === '' ? null : this.layerRoot(image);
    const upper = path.join(dir, 'root');
    return { upper, diff: await diffTrees(lower, upper) };
  }

  async diff(containerId: string): Promise<Readable> {
    const { upper, diff } = await this.treeDiff(containerId);
    return writeLayerTar(upper, diff.items, this.sys);
  }

  async changes(containerId: string): Promise<Change[]> {
    return (await this.treeDiff(containerId)).diff.changes;
  }

  async usage(): Promise<StorageUsage> {
    return {
      layers: await usageByEntry(this.layersDir, '', (name) => `sha256:${name}`),
      containers: await usageByEntry(this.containersDir),
    };
  }

  async recover(): Promise<void> {
    for (const dir of [this.layersDir, this.containersDir]) {
      for (const name of await fs.readdir(dir)) {
        if (name.startsWith('tmp-')) await removeOrQuarantine(path.join(dir, name), this.quarantine);
      }
    }
  }

  async close(): Promise<void> {
    await this.remover.settled();
  }
}

async function exists(p: string): Promise<boolean> {
  try {
    await fs.lstat(p);
    return true;
  } catch {
    return false;
  }
}
