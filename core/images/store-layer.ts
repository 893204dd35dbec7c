/**
 * An uncompressed layer tar into the content store: gzip-compressed in one pass that hashes both
 * the compressed bytes (the blob digest) and the uncompressed ones (the diff ID). Commit, import
 * and build store their layers this way.
 */
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Descriptor } from '../contracts/types';
import { MediaTypes } from '../contracts/types';
import type { ContentStore } from '../content/store';
import { AdaptiveGzip } from '../layers/compression';
import { Coalesce } from '../util/stream';

export interface StoredLayer {
  /** The compressed blob as the manifest lists it. */
  blob: Descriptor;
  /** sha256 of the uncompressed tar. */
  diffId: string;
  /** Bytes of the uncompressed tar. */
  uncompressedSize: number;
}

/** Counts and hashes what flows through, unchanged. */
export class HashingStream extends Transform {
  private readonly hash = createHash('sha256');
  bytes = 0;
  override _transform(chunk: Buffer, _e: BufferEncoding, cb: (err?: Error | null, data?: Buffer) => void): void {
    this.bytes += chunk.length;
    this.hash.update(chunk);
    cb(null, chunk);
  }
  digest(): string {
    return 'sha256:' + this.hash.digest('hex');
  }
}

/**
 * gzip an uncompressed layer tar into the content store: one pass computes the diff ID, the blob
 * digest and size while the compressed bytes go to an ingest file; the store then commits it.
 */
export async function storeLayer(content: ContentStore, tar: Readable, mediaType: string = MediaTypes.ociLayerGzip): Promise<StoredLayer> {
  const tmp = path.join(content.ingestDir, `layer-${randomBytes(8).toString('hex')}`);
  const uncompressed = new HashingStream();
  const compressed = new HashingStream();
  try {
    await pipeline(tar, uncompressed, new AdaptiveGzip(), compressed, new Coalesce(), fs.createWriteStream(tmp, { mode: 0o600 }));
    const blob: Descriptor = { mediaType, digest: compressed.digest(), size: compressed.bytes };
    // Hashed while written: the file becomes the blob as it is, no second read and copy.
    await content.adopt(tmp, blob.digest);
    return { blob, diffId: uncompressed.digest(), uncompressedSize: uncompressed.bytes };
  } finally {
    await fs.promises.rm(tmp, { force: true });
  }
}
