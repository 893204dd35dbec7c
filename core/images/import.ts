/**
 * `import`: a root filesystem tar (plain or gzip-compressed, e.g. the output of `berth export`)
 * becomes a one-layer image whose config carries the host's os/architecture, the `-c` changes and
 * a history row "Imported from -".
 */
import { Readable, pipeline } from 'node:stream';
import { peekStream } from '../util/stream';
import zlib from 'node:zlib';
import type { ImageConfig } from '../contracts/types';
import { InvalidArgumentError } from '../contracts/errors';
import type { ContentStore } from '../content/store';
import type { ImageService } from './service';
import type { ImageRecord } from './store';
import type { LayerUnpacker } from './pull';
import { hostPlatform } from './manifest';
import { applyChanges } from './config-changes';
import { recordImage, repoTag } from './record-image';
import { storeLayer } from './store-layer';
import { DEFAULT_MAX_LAYER_SIZE, SizeLimit } from '../layers/compression';

export interface ImportOptions {
  repo?: string;
  tag?: string;
  /** Dockerfile instructions (`-c`). */
  changes?: string[];
  /** History comment; default "Imported from SRC". */
  message?: string;
  /** What the tar came from, for the history row (`-` for stdin / the request body). */
  source?: string;
}

/**
 * The stream's bytes, decompressed when they start with the gzip magic. Other compressions are
 * refused by name (Docker accepts xz and bzip2 too; Node has no decoder for them).
 */
export async function decompressIfNeeded(input: Readable, what: string): Promise<Readable> {
  const { head, stream } = await peekStream(input, 6);
  if (!head.length) throw new InvalidArgumentError(`${what} is empty`);
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) {
    const gunzip = zlib.createGunzip();
    pipeline(stream, gunzip, () => undefined);
    return gunzip;
  }
  if (head.length >= 4 && head.readUInt32LE(0) === 0xfd2fb528) throw new InvalidArgumentError(`${what} is zstd-compressed, which berth cannot read: decompress it first`);
  if (head.length >= 6 && head.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])))
    throw new InvalidArgumentError(`${what} is xz-compressed, which berth cannot read: decompress it first`);
  if (head.length >= 3 && head.subarray(0, 3).toString('latin1') === 'BZh') throw new InvalidArgumentError(`${what} is bzip2-compressed, which berth cannot read: decompress it first`);
  return stream;
}

export class ImageImporter {
  constructor(private readonly deps: { content: ContentStore; images: ImageService; unpacker: () => LayerUnpacker | undefined; maxLayerSize?: number }) {}

  async import(body: Readable, opts: ImportOptions = {}): Promise<ImageRecord> {
    const tag = repoTag(opts.repo, opts.tag);
    const source = opts.source ?? '-';
    const containerConfig = applyChanges({}, opts.changes ?? []);
    // Cut off at the layer limit before it is compressed into the store, not only at unpack.
    const limited = new SizeLimit({ bytes: this.deps.maxLayerSize ?? DEFAULT_MAX_LAYER_SIZE, what: `the import source ${source}` });
    pipeline(await decompressIfNeeded(body, `the import source ${source}`), limited, () => undefined);
    const layer = await storeLayer(this.deps.content, limited);
    const now = new Date().toISOString();
    const platform = hostPlatform();
    const config: ImageConfig = {
      created: now,
      architecture: platform.architecture,
      os: platform.os,
      config: containerConfig,
      rootfs: { type: 'layers', diff_ids: [layer.diffId] },
      history: [{ created: now, comment: opts.message || `Imported from ${source}` }],
    };
    return recordImage(this.deps, { config, layers: [layer.blob], format: 'oci', tags: tag ? [tag] : [] });
  }
}
