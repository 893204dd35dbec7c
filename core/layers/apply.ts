/**
 * Applying an OCI layer changeset (an uncompressed tar stream) to a directory, treating every
 * byte as hostile (DESIGN.md section 4). Two whiteout modes:
 * - `overlay`: the directory is the layer alone; `.wh.NAME` becomes an overlay whiteout (char
 *   device 0:0) and `.wh..wh..opq` sets `trusted.overlay.opaque=y` on its directory.
 * - `merge`: the directory already holds the parent layers (vfs); whiteouts delete, opaque
 *   directories lose every entry this layer did not add.
 * The stream is consumed to its end; an error from it (the core's diff ID check) fails the apply.
 */
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as tar from 'tar-stream';
import { Applier } from './applier';
import { InvalidLayerError } from './errors';
import type { Syscalls } from '../sys/syscalls';

export type WhiteoutMode = 'overlay' | 'merge';

export interface ApplyOptions {
  whiteouts: WhiteoutMode;
  /** Apply entry uid/gid with lchown (default: when running as root). */
  chown?: boolean;
  /**
   * The tree is berth's own (a layer being made) and changes only through this apply: parent
   * directories resolved for one entry are kept for the next ones until an entry removes or
   * replaces anything. Never for a running container's tree, which can change at any time.
   */
  ownTree?: boolean;
  syscalls?: Syscalls;
}

export interface ApplyResult {
  entries: number;
  /** Bytes of the tar stream consumed. */
  tarBytes: number;
}

const BLOCK = 512;

/** Counts bytes on their way into the tar parser (for the end-of-archive check). */
class ByteCounter extends Transform {
  bytes = 0;
  ended = false;
  onEnd: () => void = () => {};
  override _flush(cb: (err?: Error | null) => void) {
    this.ended = true;
    this.onEnd();
    cb();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null, data?: Buffer) => void) {
    this.bytes += chunk.length;
    cb(null, chunk);
  }
}

export async function applyLayerTar(root: string, source: Readable, opts: ApplyOptions): Promise<ApplyResult> {
  const applier = new Applier(root, opts);
  try {
    return await applyWith(applier, source);
  } finally {
    applier.close();
  }
}

async function applyWith(applier: Applier, source: Readable): Promise<ApplyResult> {
  const counter = new ByteCounter();
  const extract = tar.extract();
  let lastEntryEnd = 0;
  let entries = 0;
  let current: Readable | null = null;
  let currentEnd = 0;
  let currentName = '';
  let feedError: Error | null = null;
  // tar-stream waits forever for the rest of an entry cut short by the end of the stream: once
  // every byte has arrived, an entry that needs more than that is a truncated tar.
  const checkTruncated = (): Error | null => {
    if (!counter.ended || current === null || counter.bytes >= currentEnd) return null;
    return new InvalidLayerError(`truncated tar: entry ${JSON.stringify(currentName)} is cut short by the end of the stream`);
  };
  counter.onEnd = () => {
    const err = checkTruncated();
    if (err) {
      feedError ??= err;
      current?.destroy(err);
      extract.destroy(err);
    }
  };
  const consume = (async () => {
    for await (const entry of extract) {
      const header = entry.header as Partial<tar.Header> & { name: string; byteOffset?: number; pax?: Record<string, string> };
      entries++;
      current = entry as unknown as Readable;
      currentName = header.name;
      currentEnd = (header.byteOffset ?? 0) + (header.type === 'directory' ? 0 : (header.size ?? 0));
      const truncated = checkTruncated();
      if (truncated) throw truncated;
      try {
        await applier.entry(header, current);
      } finally {
        current.resume();
        current = null;
      }
      const size = header.type === 'directory' ? 0 : (header.size ?? 0);
      lastEntryEnd = (header.byteOffset ?? 0) + Math.ceil(size / BLOCK) * BLOCK;
    }
  })();
  const feed = pipeline(source, counter, extract).catch((err: Error) => {
    // A broken stream (truncated, corrupt, diff ID mismatch) also ends the entry being written.
    feedError ??= err;
    current?.destroy(err);
    throw err;
  });
  const [fed, consumed] = await Promise.allSettled([feed, consume]);
  if (consumed.status === 'rejected' && !(feedError && isFeedFailure(consumed.reason, feedError))) {
    source.destroy();
    throw consumed.reason;
  }
  if (fed.status === 'rejected') {
    const err = fed.reason as Error;
    if (/Unexpected end of data|Invalid tar header|Invalid header|Header exceeds/.test(err.message)) {
      throw new InvalidLayerError(`${err.message.replace(/\. Maybe.*$/, '')} (after ${entries} entries)`, { cause: err });
    }
    throw err;
  }
  if (consumed.status === 'rejected') throw consumed.reason;
  // tar-stream ends happily at an entry boundary; a real archive ends with two zero blocks.
  if (counter.bytes < lastEntryEnd + 2 * BLOCK) {
    throw new InvalidLayerError(`truncated tar: no end-of-archive marker after ${entries} entries`);
  }
  await applier.finish();
  return { entries, tarBytes: counter.bytes };
}

/** Whether the consumer failed only because the tar stream itself broke. */
function isFeedFailure(reason: unknown, feedError: Error): boolean {
  const code = (reason as NodeJS.ErrnoException | undefined)?.code;
  return reason === feedError || code === 'ERR_STREAM_PREMATURE_CLOSE' || (reason as Error)?.message === feedError.message;
}
