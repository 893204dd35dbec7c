/**
 * Unpacking image layers into the storage driver. Each layer blob is read from the content
 * store, decompressed, hashed against its diff ID and handed to the driver as one stream; the
 * stream fails at its end when the hash differs, so the driver discards the layer. Layers of one
 * image unpack in parallel when the driver allows it; one chain ID is never applied twice at once.
 */
import { type Readable, Transform, pipeline } from 'node:stream';
import type { StorageDriver } from '../contracts/storage';
import { DEFAULT_MAX_LAYER_SIZE, openLayerStream } from '../layers/compression';
import { type ContentStore, VerifyingStream } from '../content/store';
import { type LayerUnpacker, runLimited, shortId } from './pull';
import type { Descriptor } from '../contracts/types';

export interface LayerToUnpack {
  blob: Descriptor;
  diffId: string;
  chainId: string;
  parent: string | null;
}

const PARALLEL_LAYERS = 4;

export class StorageUnpacker implements LayerUnpacker {
  private readonly inflight = new Map<string, Promise<number>>();
  /** Sizes of layers applied by this process (an image record may not exist for them yet). */
  private readonly applied = new Map<string, number>();

  constructor(
    private readonly content: ContentStore,
    private readonly driver: StorageDriver,
    private readonly knownSize: (chainId: string) => number | undefined,
    /** Bytes a layer may unpack to (config `maxLayerSize`). */
    private readonly maxLayerSize = DEFAULT_MAX_LAYER_SIZE,
  ) {}

  get streaming(): boolean {
    return this.driver.parallelApply;
  }

  unpackFrom(layer: LayerToUnpack, compressed: Readable): Promise<number> {
    return this.applyOnce(layer, () => undefined, compressed);
  }

  has(chainId: string): Promise<boolean> {
    return this.driver.hasLayer(chainId);
  }

  async unpack(layers: LayerToUnpack[], onLayer: (index: number, state: 'extracting' | 'done', current?: number) => void): Promise<number[]> {
    const sizes: number[] = new Array(layers.length).fill(0);
    const one = (i: number) => async () => {
      sizes[i] = await this.applyOnce(layers[i], (n) => onLayer(i, 'extracting', n));
      onLayer(i, 'done');
    };
    const tasks = layers.map((_, i) => one(i));
    if (this.driver.parallelApply) await runLimited(tasks, PARALLEL_LAYERS);
    else for (const t of tasks) await t();
    return sizes;
  }

  private applyOnce(layer: LayerToUnpack, progress: (read: number) => void, source?: Readable): Promise<number> {
    const running = this.inflight.get(layer.chainId);
    if (running) {
      source?.resume(); // another pull is unpacking this layer: let this download flow to the store only
      return running;
    }
    const job = this.apply(layer, progress, source).finally(() => this.inflight.delete(layer.chainId));
    this.inflight.set(layer.chainId, job);
    return job;
  }

  private async apply(layer: LayerToUnpack, progress: (read: number) => void, source?: Readable): Promise<number> {
    if (await this.driver.hasLayer(layer.chainId)) {
      source?.resume();
      return this.applied.get(layer.chainId) ?? this.knownSize(layer.chainId) ?? layer.blob.size;
    }
    let read = 0;
    let last = 0;
    const counter = new Transform({
      transform(chunk: Buffer, _e, cb) {
        read += chunk.length;
        const now = Date.now();
        if (now - last > 100) {
          last = now;
          progress(read);
        }
        cb(null, chunk);
      },
    });
    const blob = source ?? this.content.open(layer.blob.digest);
    pipeline(blob, counter, () => undefined);
    const verify = new VerifyingStream({ digest: layer.diffId }, `layer ${shortId(layer.blob.digest)} (diff ID)`);
    // pipeline destroys every stage when one fails, so the driver sees decompression errors too.
    const limit = { bytes: this.maxLayerSize, what: `layer ${layer.blob.digest}` };
    pipeline(openLayerStream(counter, layer.blob.mediaType, limit), verify, () => undefined);
    const { size } = await this.driver.applyLayer(layer.chainId, layer.parent, verify);
    this.applied.set(layer.chainId, size);
    return size;
  }
}
