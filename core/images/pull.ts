/**
 * `pull`: resolve a reference through the registry that claims it, pick the platform, fetch the
 * config and the layers (several at once, each verified against digest and size into the content
 * store, shared when already stored or in flight), unpack them through the layer store when one is
 * configured, and only then record and tag the image.
 */
import { PassThrough, type Readable } from 'node:stream';
import type { Descriptor, ImageConfig, ImageRef, Platform, ProgressSink } from '../contracts/types';
import { BerthError, NotFoundError } from '../contracts/errors';
import type { Registry, RegistryCredentials } from '../contracts/registry';
import { type ContentStore, DigestMismatchError, sha256Digest } from '../content/store';
import type { ImageRecord, ImageStore } from './store';
import { chainIds, checkConfigSize } from './store';
import { type ImageManifest, hostPlatform, parseManifest, selectPlatform, formatPlatform } from './manifest';
import { familiarReference, formatReference, repositoryName } from './reference';

export interface PullOptions {
  platform?: Platform;
  credentials?: RegistryCredentials;
  progress?: ProgressSink;
  signal?: AbortSignal;
}

/** Unpacks layers into the storage driver; absent until a storage driver is configured. */
export interface LayerUnpacker {
  /** Whether the layer with this chain ID is already unpacked. */
  has(chainId: string): Promise<boolean>;
  /**
   * Unpack layers in order (or in parallel when the driver allows), reading each blob from the
   * content store. `onLayer` reports each layer as it starts and ends. Returns bytes on disk per layer.
   */
  unpack(layers: { blob: Descriptor; diffId: string; chainId: string; parent: string | null }[], onLayer: (index: number, state: 'extracting' | 'done', current?: number) => void): Promise<number[]>;
  /** Whether a layer can be unpacked on its own while it downloads (layers independent of parents). */
  readonly streaming: boolean;
  /** Unpack one layer from its compressed bytes as they arrive; the stream errors if they are bad. */
  unpackFrom(layer: { blob: Descriptor; diffId: string; chainId: string; parent: string | null }, compressed: Readable): Promise<number>;
}

export const LAYER_CONCURRENCY = 6;

export const shortId = (digest: string) => digest.replace(/^sha256:/, '').slice(0, 12);

export class Puller {
  constructor(
    private readonly content: ContentStore,
    private readonly images: ImageStore,
    private readonly registries: () => Registry[],
    private readonly unpacker: () => LayerUnpacker | undefined,
  ) {}

  registryFor(ref: ImageRef): Registry {
    const reg = this.registries().find((r) => r.claims(ref));
    if (!reg) throw new BerthError(`no registry plugin accepts ${formatReference(ref)}`);
    return reg;
  }

  async pull(ref: ImageRef, opts: PullOptions = {}): Promise<ImageRecord> {
    const progress = opts.progress ?? (() => undefined);
    const what = familiarReference(ref);
    const registry = this.registryFor(ref);
    const reqOpts = { signal: opts.signal, credentials: opts.credentials };
    const platform = opts.platform ?? hostPlatform();

    // Nothing is reported before the manifest resolves, so a missing image can still be a plain 404.
    let fetched = await registry.getManifest(ref, ref.digest ?? ref.tag!, reqOpts);
    progress({ id: ref.tag ?? ref.digest, status: `Pulling from ${ref.path}` });
    let manifestDigest = sha256Digest(fetched.bytes);
    if (ref.digest && manifestDigest !== ref.digest) throw new DigestMismatchError(ref.digest, manifestDigest, `manifest of ${what}`);
    let parsed = parseManifest(fetched.bytes, fetched.mediaType, what);
    const indexBytes = parsed.kind === 'index' ? fetched.bytes : undefined;
    if (parsed.kind === 'index') {
      const chosen = selectPlatform(parsed, platform, what);
      fetched = await registry.getManifest(ref, chosen.digest, reqOpts);
      const childDigest = sha256Digest(fetched.bytes);
      if (childDigest !== chosen.digest) throw new DigestMismatchError(chosen.digest, childDigest, `manifest for ${formatPlatform(platform)} of ${what}`);
      parsed = parseManifest(fetched.bytes, fetched.mediaType || chosen.mediaType, what);
      if (parsed.kind !== 'manifest') throw new BerthError(`${what}: nested index for ${formatPlatform(platform)} is not supported`);
      manifestDigest = childDigest;
    }
    const manifest = parsed as ImageManifest;
    const repoDigest = `${repositoryName(ref)}@${ref.digest ?? sha256Digest(indexBytes ?? fetched.bytes)}`;

    // Every blob this pull needs is leased: a failed pull removes what it fetched and nothing
    // else uses, so it leaves no half image behind, and a concurrent rmi cannot take them away.
    const blobs = [manifest.config.digest, ...manifest.layers.map((l) => l.digest)];
    const release = this.content.lease(blobs);
    let record: ImageRecord;
    let upToDate: boolean;
    try {
      ({ record, upToDate } = await this.fetchAndRecord(ref, registry, reqOpts, manifest, fetched.bytes, indexBytes, manifestDigest, repoDigest, platform, opts, progress, what));
    } catch (err) {
      release();
      await this.dropUnreferenced(blobs);
      throw err;
    }
    release();
    progress({ status: `Digest: ${ref.digest ?? repoDigest.split('@')[1]}` });
    progress({ status: upToDate ? `Status: Image is up to date for ${what}` : `Status: Downloaded newer image for ${what}` });
    return record;
  }

  private async dropUnreferenced(digests: string[]): Promise<void> {
    const used = new Set(this.images.list().flatMap((r) => [r.configDigest, ...r.layers.map((l) => l.digest)]));
    for (const d of digests) if (!used.has(d) && !this.content.isLeased(d)) await this.content.delete(d);
  }

  private async fetchAndRecord(
    ref: ImageRef,
    registry: Registry,
    reqOpts: { signal?: AbortSignal; credentials?: RegistryCredentials },
    manifest: ImageManifest,
    manifestBytes: Buffer,
    indexBytes: Buffer | undefined,
    manifestDigest: string,
    repoDigest: string,
    platform: Platform,
    opts: PullOptions,
    progress: ProgressSink,
    what: string,
  ): Promise<{ record: ImageRecord; upToDate: boolean }> {
    // Config first: it names the diff IDs every layer must unpack to. Its size is checked against
    // the manifest's word before a byte is fetched (the ingest holds the registry to that word).
    checkConfigSize(manifest.config.size, what);
    await this.content.ingest(manifest.config, () => registry.getBlob(ref, manifest.config, reqOpts));
    const config = parseConfig(await this.content.read(manifest.config.digest), what);
    if (config.rootfs.diff_ids.length !== manifest.layers.length) {
      throw new BerthError(`${what}: config lists ${config.rootfs.diff_ids.length} diff IDs for ${manifest.layers.length} layers`);
    }
    if (opts.platform && (config.os !== platform.os || config.architecture !== platform.architecture)) {
      throw new NotFoundError(`${what} is ${config.os}/${config.architecture}, not ${formatPlatform(platform)}`);
    }
    const chains = chainIds(config.rootfs.diff_ids);
    // By digest, an image already pulled from this repository is "up to date", as in Docker.
    const previous = ref.tag ? this.images.byTag(ref) : this.images.find(formatReference(ref));

    const unpacker = this.unpacker();
    const ids = manifest.layers.map((l) => shortId(l.digest));
    const present = await Promise.all(manifest.layers.map(async (l, i) => (unpacker ? unpacker.has(chains[i]) : this.content.has(l.digest))));
    manifest.layers.forEach((_, i) => progress({ id: ids[i], status: present[i] ? 'Already exists' : 'Pulling fs layer' }));

    const todo = manifest.layers.map((blob, i) => ({ blob, diffId: config.rootfs.diff_ids[i], chainId: chains[i], parent: i ? chains[i - 1] : null }));
    // With a driver whose layers are independent, each layer unpacks while it downloads: the
    // bytes go to the content store and the driver at once. The driver only commits the layer if
    // the stream ends cleanly, which it does only once digest and size are verified.
    const streamed = new Set<number>();
    await runLimited(
      manifest.layers.map((layer, i) => async () => {
        if (present[i] || (await this.content.has(layer.digest))) return;
        let last = 0;
        // A download another pull already runs is shared instead (its pull unpacks the layer).
        const tap = unpacker?.streaming && !this.content.ingesting(layer.digest) ? new PassThrough({ highWaterMark: 1024 * 1024 }) : undefined;
        const unpacking = tap && unpacker!.unpackFrom(todo[i], tap);
        const ingesting = this.content.ingest(layer, () => registry.getBlob(ref, layer, reqOpts), {
          tap,
          onProgress: (received) => {
            const now = Date.now();
            if (now - last < 100 && received < layer.size) return;
            last = now;
            progress({ id: ids[i], status: 'Downloading', current: received, total: layer.size });
          },
        });
        await Promise.all([ingesting, unpacking]);
        progress({ id: ids[i], status: 'Verifying Checksum' });
        progress({ id: ids[i], status: 'Download complete' });
        if (unpacking) {
          streamed.add(i);
          progress({ id: ids[i], status: 'Pull complete' });
        }
      }),
      LAYER_CONCURRENCY,
      opts.signal,
    );

    let sizes = manifest.layers.map((l) => l.size);
    if (unpacker) {
      sizes = await unpacker.unpack(todo, (i, state, current) => {
        if (present[i] || streamed.has(i)) return;
        if (state === 'extracting') progress({ id: ids[i], status: 'Extracting', current, total: manifest.layers[i].size });
        else progress({ id: ids[i], status: 'Pull complete' });
      });
    } else {
      manifest.layers.forEach((_, i) => present[i] || progress({ id: ids[i], status: 'Pull complete' }));
    }

    // Every blob is committed; now the manifest(s), the record, and last the tag.
    await this.content.put(manifestBytes);
    if (indexBytes) await this.content.put(indexBytes);
    const record: ImageRecord = {
      id: manifest.config.digest,
      manifestDigest,
      manifestMediaType: manifest.mediaType,
      configDigest: manifest.config.digest,
      layers: manifest.layers,
      diffIds: config.rootfs.diff_ids,
      chainIds: chains,
      repoDigests: [repoDigest],
      created: config.created,
      architecture: config.architecture,
      os: config.os,
      size: sizes.reduce((a, b) => a + b, 0),
      layerSizes: unpacker ? sizes : undefined,
      recorded: new Date().toISOString(),
    };
    await this.images.add(record, ref.tag ? ref : undefined);
    return { record, upToDate: previous?.id === record.id && present.every(Boolean) };
  }
}

export function parseConfig(bytes: Buffer, what: string): ImageConfig {
  let config: ImageConfig;
  try {
    config = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new BerthError(`image config of ${what} is not valid JSON: ${(err as Error).message}`);
  }
  if (!config?.rootfs || !Array.isArray(config.rootfs.diff_ids) || config.rootfs.diff_ids.some((d) => !/^sha256:[a-f0-9]{64}$/.test(d))) {
    throw new BerthError(`image config of ${what} has no valid rootfs.diff_ids`);
  }
  return config;
}

/** Run tasks with at most `limit` at once; the first failure aborts the rest and is thrown. */
export async function runLimited(tasks: (() => Promise<void>)[], limit: number, signal?: AbortSignal): Promise<void> {
  let next = 0;
  let failed: unknown;
  const worker = async () => {
    while (next < tasks.length && failed === undefined) {
      signal?.throwIfAborted();
      const task = tasks[next++];
      try {
        await task();
      } catch (err) {
        failed ??= err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, worker));
  if (failed !== undefined) throw failed;
}
