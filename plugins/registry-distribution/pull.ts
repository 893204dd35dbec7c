/**
 * The pull side: manifests (the exact bytes, capped at 4 MiB, schema 1 refused, checked against
 * the digest when pulled by one) and blobs (resumable from an offset; the core verifies them).
 */
import crypto from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { Transform, pipeline, type Readable } from 'node:stream';
import { MediaTypes, RegistryError, type BlobRequestOptions, type Descriptor, type FetchedManifest, type ImageRef, type RegistryRequestOptions } from '../../core/plugin';
import { checkRef, refText } from './names';
import type { RegistrySession } from './session';

const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

const MANIFEST_ACCEPT = [
  MediaTypes.ociManifest,
  MediaTypes.ociIndex,
  MediaTypes.dockerManifest,
  MediaTypes.dockerManifestList,
  // Asked for only so that a schema1-only image is answered and refused with a clear message.
  MediaTypes.dockerSchema1Signed,
  MediaTypes.dockerSchema1,
].join(', ');

const SCHEMA1 = new Set<string>([MediaTypes.dockerSchema1, MediaTypes.dockerSchema1Signed]);

export async function getManifest(session: RegistrySession, ref: ImageRef, reference: string, opts: RegistryRequestOptions = {}): Promise<FetchedManifest> {
  checkRef(ref, reference);
  const what = refText(ref, reference);
  return session.onEndpoints(ref.domain, true, opts.signal, async (ep) => {
    const res = await session.request(ep, [`repository:${ref.path}:pull`], opts, {
      method: 'GET',
      target: `/v2/${ref.path}/manifests/${reference}`,
      headers: { Accept: MANIFEST_ACCEPT },
    });
    if (res.statusCode !== 200) throw await session.statusError(res, ep, `manifest ${what}`, 'manifest unknown', opts);
    const bytes = await readCapped(res, what);
    const mediaType = manifestMediaType(res.headers['content-type'], bytes);
    if (SCHEMA1.has(mediaType)) {
      throw new RegistryError(`unsupported manifest: ${what} uses Docker image manifest schema 1 (${mediaType}), which berth does not support; push the image again with a current client`, 400);
    }
    if (reference.startsWith('sha256:')) {
      const actual = `sha256:${crypto.createHash('sha256').update(bytes).digest('hex')}`;
      if (actual !== reference) throw new RegistryError(`manifest digest mismatch for ${what}: ${ep.display} served ${actual}`, 502);
    }
    return { bytes, mediaType };
  });
}

export async function getBlob(session: RegistrySession, ref: ImageRef, desc: Descriptor, opts: BlobRequestOptions = {}): Promise<Readable> {
  checkRef(ref, desc.digest);
  const offset = opts.offset ?? 0;
  const release = await session.slots.acquire(opts.signal);
  try {
    const stream = await session.onEndpoints(ref.domain, true, opts.signal, async (ep) => {
      const res = await session.request(ep, [`repository:${ref.path}:pull`], opts, {
        method: 'GET',
        target: `/v2/${ref.path}/blobs/${desc.digest}`,
        headers: offset > 0 ? { Range: `bytes=${offset}-` } : {},
        followRedirects: true,
      });
      if (res.statusCode === 206 && offset > 0) return res as Readable;
      if (res.statusCode === 200) {
        // A server that ignores Range sends everything: drop what the caller already has.
        return offset > 0 ? skipBytes(res, offset) : (res as Readable);
      }
      throw await session.statusError(res, ep, `blob ${ref.domain}/${ref.path}@${desc.digest}`, 'blob unknown', opts);
    });
    stream.once('close', release);
    stream.once('end', release);
    stream.once('error', release);
    return stream;
  } catch (err) {
    release();
    throw err;
  }
}

/** Read a manifest body, refusing it once it passes MAX_MANIFEST_BYTES (the rest is not read). */
async function readCapped(res: IncomingMessage, what: string): Promise<Buffer> {
  const tooLarge = () => new RegistryError(`manifest ${what} is larger than the ${MAX_MANIFEST_BYTES / (1024 * 1024)} MiB limit (${MAX_MANIFEST_BYTES} bytes)`, 400);
  const declared = Number(res.headers['content-length']);
  if (Number.isFinite(declared) && declared > MAX_MANIFEST_BYTES) {
    res.destroy();
    throw tooLarge();
  }
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of res as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > MAX_MANIFEST_BYTES) {
      res.destroy();
      throw tooLarge();
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, total);
}

/** The manifest's media type: the Content-Type, or the body's own `mediaType`/shape when the server sent a generic one. */
function manifestMediaType(contentType: string | undefined, bytes: Buffer): string {
  const header = (contentType ?? '').split(';')[0].trim().toLowerCase();
  if (header && header !== 'application/json' && header !== 'text/plain' && header !== 'application/octet-stream') return header;
  try {
    const body = JSON.parse(bytes.toString('utf8')) as { mediaType?: string; schemaVersion?: number; manifests?: unknown; config?: unknown };
    if (typeof body.mediaType === 'string') return body.mediaType;
    if (body.schemaVersion === 1) return MediaTypes.dockerSchema1Signed;
    if (Array.isArray(body.manifests)) return MediaTypes.ociIndex;
    if (body.config) return MediaTypes.ociManifest;
  } catch {
    // not JSON: report the header as is
  }
  return header || 'application/octet-stream';
}

/** Drop the first `count` bytes of a stream. */
function skipBytes(source: Readable, count: number): Readable {
  let left = count;
  const skipper = new Transform({
    transform(chunk: Buffer, _enc, done) {
      if (left >= chunk.length) {
        left -= chunk.length;
        done();
      } else {
        const rest = chunk.subarray(left);
        left = 0;
        done(null, rest);
      }
    },
  });
  pipeline(source, skipper, () => {});
  return skipper;
}
