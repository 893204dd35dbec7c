import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { promisify } from 'node:util';
import {
  NotFoundError,
  applyLayerTar,
  chainIdHex,
  checkContainerId,
  diffTrees,
  diskUsage,
  drain,
  removeTree,
  usageByEntry,
  writeLayerTar,
  type Change,
  type StorageDriver,
  type StorageUsage,
} from 'berth/plugin';

const execFileP = promisify(execFile);
const exists = (p: string) =>
  fs.access(p).then(
    () => true,
    () => false,
  );

/**
 * vfs, copying with `cp -a --reflink=auto`: every layer and container is a full tree, but on a
 * filesystem with reflinks (btrfs, XFS) a copy shares its blocks until written. A tree being made
 * is built under `tmp-*` and renamed into place, so a failure leaves no trace of it.
 *
 * On disk (its state dir): layers/<chain hex>/root, containers/<id>/{root,image}.
 */
export class ReflinkDriver implements StorageDriver {
  readonly name = 'reflink';
  readonly parallelApply = false; // each layer starts as a copy of its parent
  private readonly layers: string;
  private readonly containers: string;

  constructor(stateDir: string) {
    this.layers = path.join(stateDir, 'layers');
    this.containers = path.join(stateDir, 'containers');
  }

  async init(): Promise<void> {
    await fs.mkdir(this.layers, { recursive: true, mode: 0o700 });
    await fs.mkdir(this.containers, { recursive: true, mode: 0o700 });
  }

  private layerRoot(chainId: string): string {
    return path.join(this.layers, chainIdHex(chainId), 'root');
  }

  private containerDir(id: string): string {
    return path.join(this.containers, checkContainerId(id));
  }

  /** Build `dest`/root from a copy of `from` (or empty), then `fill` the new dir; all or nothing. */
  private async build(dest: string, from: string | null, fill: (dir: string) => Promise<unknown>): Promise<void> {
    const tmp = await fs.mkdtemp(path.join(path.dirname(dest), 'tmp-'));
    try {
      if (from) await execFileP('cp', ['-a', '--reflink=auto', from, path.join(tmp, 'root')]);
      else await fs.mkdir(path.join(tmp, 'root'), 0o755);
      await fill(tmp);
      await fs.rename(tmp, dest);
    } catch (err) {
      await removeTree(tmp);
      throw err;
    }
  }

  async applyLayer(chainId: string, parentChainId: string | null, tar: Readable): Promise<{ size: number }> {
    const dest = path.dirname(this.layerRoot(chainId));
    if (await this.hasLayer(chainId)) {
      await drain(tar);
    } else {
      if (parentChainId && !(await this.hasLayer(parentChainId))) {
        tar.destroy();
        throw new NotFoundError(`parent layer ${parentChainId} of ${chainId} is not stored`);
      }
      const parent = parentChainId && this.layerRoot(parentChainId);
      // The tar is hostile input: berth's applier keeps every entry inside the root.
      const apply = (dir: string) => applyLayerTar(path.join(dir, 'root'), tar, { whiteouts: 'merge', ownTree: true });
      await this.build(dest, parent, apply).catch((err) => {
        tar.destroy();
        throw err;
      });
    }
    return { size: await diskUsage(dest) };
  }

  hasLayer(chainId: string): Promise<boolean> {
    return exists(this.layerRoot(chainId));
  }

  async removeLayer(chainId: string): Promise<void> {
    await removeTree(path.dirname(this.layerRoot(chainId)));
  }

  async create(containerId: string, topChainId: string | null): Promise<void> {
    const dir = this.containerDir(containerId);
    if (await exists(dir)) return;
    if (topChainId && !(await this.hasLayer(topChainId))) throw new NotFoundError(`layer ${topChainId} is not stored`);
    await this.build(dir, topChainId && this.layerRoot(topChainId), (tmp) => fs.writeFile(path.join(tmp, 'image'), topChainId ?? ''));
  }

  async mount(containerId: string): Promise<string> {
    const dir = this.containerDir(containerId);
    if (!(await exists(dir))) throw new NotFoundError(`no storage for container ${containerId}`);
    return path.join(dir, 'root'); // a plain directory: nothing to mount, nothing to count
  }

  async unmount(): Promise<void> {}

  async remove(containerId: string): Promise<void> {
    await removeTree(this.containerDir(containerId));
  }

  private async treeDiff(containerId: string) {
    const upper = await this.mount(containerId);
    const image = await fs.readFile(path.join(path.dirname(upper), 'image'), 'utf8');
    return { upper, diff: await diffTrees(image ? this.layerRoot(image) : null, upper) };
  }

  async diff(containerId: string): Promise<Readable> {
    const { upper, diff } = await this.treeDiff(containerId);
    return writeLayerTar(upper, diff.items);
  }

  async changes(containerId: string): Promise<Change[]> {
    return (await this.treeDiff(containerId)).diff.changes;
  }

  async usage(): Promise<StorageUsage> {
    return {
      layers: await usageByEntry(this.layers, '', (name) => `sha256:${name}`),
      containers: await usageByEntry(this.containers),
    };
  }

  /** At start: trees left half-built by a crash. */
  async recover(): Promise<void> {
    for (const dir of [this.layers, this.containers]) {
      for (const name of await fs.readdir(dir)) if (name.startsWith('tmp-')) await removeTree(path.join(dir, name));
    }
  }
}
