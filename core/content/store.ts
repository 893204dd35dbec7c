/**
 * Content-addressed blob store: `<root>/content/blobs/sha256/<hex>`.
 * Blobs arrive through an ingest file that is hashed while it is written, checked for size and
 * digest, fsynced and atomically renamed into place; committed blobs are read-only. Half-written
 * ingests (a crash, a failed download) are never visible as blobs and are dropped when the store opens.
 */
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PassThrough, Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Descriptor } from '../contracts/types';
import { BerthError, InvalidArgumentError, NotFoundError } from '../contracts/errors';
import type { BlobReader } from '../contracts/services';
import { ensureDir, fsyncDir } from '../util/fs';
import { Coalesce } from '../util/stream';

const SHA256 = /^sha256:([a-f0-9]{64})$/;

/** Validate a digest string before it touches a path; returns its hex part. */
export function digestHex(digest: string): string {
  const m = SHA256.exec(digest);
  if (!m) throw new InvalidArgumentError(`invalid digest "${digest}": expected sha256:<64 lowercase hex>`);
  return m[1];
}

export function sha256Digest(data: Buffer | string): string {
  return 'sha256:' + createHash('sha256').update(data).digest('hex');
}

export class DigestMismatchError extends BerthError {
  constructor(
    readonly expected: string,
    readonly actual: string,
    what = 'blob',
  ) {
    super(`${what} digest mismatch: expected ${expected}, got ${actual}`, 500);
  }
}

export class SizeMismatchError extends BerthError {
  constructor(
    readonly digest: string,
    readonly expected: number,
    readonly actual: number,
  ) {
    super(`blob ${digest} size mismatch: expected ${expected} bytes, got ${actual}${actual > expected ? ' or more' : ''}`, 500);
  }
}

/**
 * A pass-through stream that hashes and counts what flows through it and fails at the end
 * (before signalling end-of-stream) when the digest or size differs from what was expected.
 * Readers downstream therefore never see a clean end of unverified content.
 */
export class VerifyingStream extends Transform {
  private readonly hash = createHash('sha256');
  bytes = 0;
  constructor(
    private readonly expected: { digest: string; size?: number },
    private readonly what = 'blob',
  ) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.expected.size !== undefined && this.bytes > this.expected.size) {
      cb(new SizeMismatchError(this.expected.digest, this.expected.size, this.bytes));
      return;
    }
    this.hash.update(chunk);
    cb(null, chunk);
  }
  override _flush(cb: TransformCallback): void {
    if (this.expected.size !== undefined && this.bytes !== this.expected.size) {
      cb(new SizeMismatchError(this.expected.digest, this.expected.size, this.bytes));
      return;
    }
    const actual = 'sha256:' + this.hash.digest('hex');
    cb(actual === this.expected.digest ? null : new DigestMismatchError(this.expected.digest, actual, this.what));
  }
}

export interface IngestOptions {
  /** Called with the running byte count as data arrives. */
  onProgress?: (received: number) => void;
  /** Receives the same bytes as they are written (e.g. to unpack while downloading). Ended on success, destroyed with the error on failure. */
  tap?: PassThrough;
}

export class ContentStore implements BlobReader {
  readonly blobsDir: string;
  readonly ingestDir: string;
  /** Ingests in flight, by digest: two pulls of one blob at once share one download. */
  private readonly inflight = new Map<string, Promise<void>>();

  constructor(readonly root: string) {
    this.blobsDir = path.join(root, 'content', 'blobs', 'sha256');
    this.ingestDir = path.join(root, 'content', 'ingest');
  }

  /** Digests held by operations in progress (a pull) that garbage collection must not delete. */
  private readonly leases = new Map<string, number>();

  /** Hold digests until the returned function is called. */
  lease(digests: string[]): () => void {
    for (const d of digests) this.leases.set(d, (this.leases.get(d) ?? 0) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      for (const d of digests) {
        const n = (this.leases.get(d) ?? 1) - 1;
        if (n > 0) this.leases.set(d, n);
        else this.leases.delete(d);
      }
    };
  }

  /** Whether a download of this blob is in progress. */
  ingesting(digest: string): boolean {
    return this.inflight.has(digest);
  }

  isLeased(digest: string): boolean {
    return this.leases.has(digest);
  }

  /** Create the directories and drop ingests a crash left behind. */
  async init(): Promise<void> {
    await ensureDir(this.blobsDir);
    await fs.promises.rm(this.ingestDir, { recursive: true, force: true });
    await ensureDir(this.ingestDir);
  }

  blobPath(digest: string): string {
    return path.join(this.blobsDir, digestHex(digest));
  }

  async has(digest: string): Promise<boolean> {
    try {
      await fs.promises.access(this.blobPath(digest));
      return true;
    } catch {
      return false;
    }
  }

  async stat(digest: string): Promise<Descriptor | undefined> {
    try {
      const st = await fs.promises.stat(this.blobPath(digest));
      return { mediaType: 'application/octet-stream', digest, size: st.size };
    } catch {
      return undefined;
    }
  }

  open(digest: string): Readable {
    // 1 MiB reads: layers are large and flow through several stages (gunzip, hash, tar, write).
    return fs.createReadStream(this.blobPath(digest), { highWaterMark: 1024 * 1024 });
  }

  async read(digest: string): Promise<Buffer> {
    try {
      return await fs.promises.readFile(this.blobPath(digest));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new NotFoundError(`blob ${digest} not found in the content store`);
      throw err;
    }
  }

  /** Store bytes already in memory (manifests, configs); returns the digest. */
  async put(data: Buffer, expectedDigest?: string): Promise<string> {
    const digest = sha256Digest(data);
    if (expectedDigest && expectedDigest !== digest) throw new DigestMismatchError(expectedDigest, digest);
    if (!(await this.has(digest))) await this.ingest({ digest, size: data.length }, async () => Readable.from([data]));
    return digest;
  }

  /**
   * Stream a blob into the store, verifying size and digest. A blob already stored is not fetched
   * again; concurrent ingests of one digest share the first one's download.
   */
  ingest(expected: { digest: string; size?: number }, source: () => Promise<Readable>, opts: IngestOptions = {}): Promise<void> {
    // A bad digest rejects like any other ingest failure instead of throwing synchronously.
    try {
      digestHex(expected.digest);
    } catch (err) {
      return Promise.reject(err);
    }
    const running = this.inflight.get(expected.digest);
    if (running && !opts.tap) return running;
    const job = this.ingestOnce(expected, source, opts).finally(() => {
      if (this.inflight.get(expected.digest) === job) this.inflight.delete(expected.digest);
    });
    this.inflight.set(expected.digest, job);
    return job;
  }

  private async ingestOnce(expected: { digest: string; size?: number }, source: () => Promise<Readable>, opts: IngestOptions): Promise<void> {
    const final = this.blobPath(expected.digest);
    if (!opts.tap && (await this.has(expected.digest))) return;
    const tmp = path.join(this.ingestDir, `${digestHex(expected.digest)}-${randomBytes(4).toString('hex')}`);
    const verify = new VerifyingStream(expected);
    let received = 0;
    let out: fs.WriteStream | undefined;
    try {
      const input = await source();
      const counter = new Transform({
        transform(chunk: Buffer, _e, cb) {
          received += chunk.length;
          opts.onProgress?.(received);
          // Respect the tap's backpressure so a slow unpacker never makes the download buffer in
          // memory; a tap whose reader failed is dropped, and the blob is still stored.
          const tap = opts.tap && !opts.tap.destroyed ? opts.tap : undefined;
          if (tap && !tap.write(chunk)) {
            const go = () => {
              tap.off('drain', go);
              tap.off('close', go);
              cb(null, chunk);
            };
            tap.on('drain', go);
            tap.on('close', go);
          } else cb(null, chunk);
        },
      });
      // flush: fsync before close, so a renamed blob is on disk whatever happens next.
      out = fs.createWriteStream(tmp, { mode: 0o600, flush: true });
      await pipeline(input, counter, verify, new Coalesce(), out);
      await fs.promises.chmod(tmp, 0o444);
      await fs.promises.rename(tmp, final);
      await fsyncDir(this.blobsDir);
      opts.tap?.end();
    } catch (err) {
      // A failed pipeline does not wait for the file's open to finish: remove it once closed, or
      // an open that lands after the rm leaves an ingest file behind.
      if (out && !out.closed) await new Promise<void>((resolve) => out!.once('close', () => resolve()));
      await fs.promises.rm(tmp, { force: true });
      opts.tap?.destroy(err as Error);
      throw err;
    }
  }

  /**
   * Commit a file berth itself just wrote into the ingest directory and hashed on the way (a
   * committed layer): fsync and rename it into place instead of copying it through `ingest`.
   */
  async adopt(file: string, digest: string): Promise<void> {
    if (path.dirname(path.resolve(file)) !== path.resolve(this.ingestDir)) throw new BerthError(`adopt: ${file} is not in ${this.ingestDir}`);
    const final = this.blobPath(digest);
    if (await this.has(digest)) {
      await fs.promises.rm(file, { force: true });
      return;
    }
    const fh = await fs.promises.open(file, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fs.promises.chmod(file, 0o444);
    await fs.promises.rename(file, final);
    await fsyncDir(this.blobsDir);
  }

  async delete(digest: string): Promise<void> {
    await fs.promises.rm(this.blobPath(digest), { force: true });
  }

  /**
   * Deletes those of `digests` that no image uses and no operation holds under a lease: what a
   * failed pull, import, load or build brought in, so it leaves no orphaned blob behind.
   */
  async dropUnused(digests: Iterable<string>, inUse: (digest: string) => boolean): Promise<void> {
    for (const d of new Set(digests)) {
      if (d && !inUse(d) && !this.isLeased(d)) await this.delete(d).catch(() => undefined);
    }
  }

  async *list(): AsyncGenerator<{ digest: string; size: number }> {
    for (const name of await fs.promises.readdir(this.blobsDir)) {
      if (!/^[a-f0-9]{64}$/.test(name)) continue;
      const st = await fs.promises.stat(path.join(this.blobsDir, name));
      yield { digest: `sha256:${name}`, size: st.size };
    }
  }

  /** Re-hash one stored blob; returns the actual digest. */
  async rehash(digest: string): Promise<string> {
    const hash = createHash('sha256');
    await pipeline(this.open(digest), hash);
    return 'sha256:' + hash.digest('hex');
  }
}
