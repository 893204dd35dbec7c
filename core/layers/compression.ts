/**
 * Turning a layer blob into the uncompressed tar stream a storage driver applies. gzip streams
 * must end exactly at the end of the blob: trailing bytes (garbage, or zeros zlib would skip)
 * are an error, so two different blobs never unpack to the same layer silently.
 */
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream';
import zlib from 'node:zlib';
import { InvalidLayerError } from './errors';

export type LayerCompression = 'none' | 'gzip' | 'zstd';

/** The compression a layer media type names; unknown media types are an error naming them. */
export function layerCompression(mediaType: string): LayerCompression {
  if (/(\+gzip|\.tar\.gzip)$/.test(mediaType)) return 'gzip';
  if (/\+zstd$/.test(mediaType)) return 'zstd';
  if (/(layer\.v1\.tar|rootfs\.diff\.tar)$/.test(mediaType)) return 'none';
  throw new InvalidLayerError(`unsupported layer media type ${JSON.stringify(mediaType)}`);
}

/** The uncompressed tar stream of a layer blob. Errors (bad gzip, trailing data) surface on the returned stream. */
export function openLayerStream(blob: Readable, mediaType: string): Readable {
  const compression = layerCompression(mediaType);
  if (compression === 'none') return blob;
  if (compression === 'zstd') {
    blob.destroy();
    throw new InvalidLayerError(
      `zstd-compressed layers (${mediaType}) are not supported: Node ${process.version} has no zstd decompressor`,
    );
  }
  let compressedBytes = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      compressedBytes += chunk.length;
      cb(null, chunk);
    },
  });
  // Large output chunks: the default 16 KiB makes every later stage (hash, tar, write) run 16x as often.
  const gunzip = zlib.createGunzip({ chunkSize: 256 * 1024 });
  const out = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      cb(null, chunk);
    },
    flush(cb) {
      const trailing = compressedBytes - gunzip.bytesWritten;
      if (trailing > 0) cb(new InvalidLayerError(`${trailing} bytes of trailing data after the gzip stream`));
      else cb();
    },
  });
  // Errors reach the consumer through the stream; this keeps one that arrives after the
  // consumer gave up from becoming an uncaught exception.
  out.on('error', () => {});
  pipeline(blob, counter, gunzip, (err) => {
    if (err && !out.destroyed) out.destroy(wrapZlib(err));
  });
  gunzip.pipe(out);
  // A consumer that gives up early (a failed apply) releases the blob too.
  out.once('close', () => {
    if (!blob.destroyed) blob.destroy();
  });
  return out;
}

function wrapZlib(err: Error): Error {
  if ((err as NodeJS.ErrnoException).code?.startsWith('Z_')) return new InvalidLayerError(`bad gzip data: ${err.message}`, { cause: err });
  return err;
}
