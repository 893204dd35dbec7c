/** Stream helpers shared by the image importers and the builder. */
import { Readable, Transform, type TransformCallback } from 'node:stream';

/**
 * The first `n` bytes of a stream, and a stream of all its bytes (those included). Read through
 * the stream's iterator rather than with unshift, which loses data on a body that already ended.
 */
export async function peekStream(input: Readable, n: number): Promise<{ head: Buffer; stream: Readable }> {
  const it = input[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const first: Buffer[] = [];
  let got = 0;
  let done = false;
  while (got < n) {
    const r = await it.next();
    if (r.done) {
      done = true;
      break;
    }
    first.push(r.value);
    got += r.value.length;
  }
  const head = Buffer.concat(first);
  async function* all() {
    if (head.length) yield head;
    if (done) return;
    for (;;) {
      const r = await it.next();
      if (r.done) return;
      yield r.value;
    }
  }
  return { head: head.subarray(0, n), stream: Readable.from(all(), { objectMode: false }) };
}

/**
 * Gathers small chunks into writes of about `size` bytes. Each fs write costs a syscall and a trip
 * through libuv's pool, so 64 KiB network chunks written one by one cost several times more CPU
 * than the same bytes in 1 MiB writes (measured here: 318 ms vs 149 ms for 190 MB).
 */
export class Coalesce extends Transform {
  private parts: Buffer[] = [];
  private bytes = 0;
  constructor(private readonly size = 1024 * 1024) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.parts.push(chunk);
    this.bytes += chunk.length;
    if (this.bytes >= this.size) this.flushParts();
    cb();
  }
  override _flush(cb: TransformCallback): void {
    this.flushParts();
    cb();
  }
  private flushParts(): void {
    if (!this.bytes) return;
    this.push(this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts, this.bytes));
    this.parts = [];
    this.bytes = 0;
  }
}

/**
 * Exactly `size` bytes: a file that shrank while it was read is padded with zeros, so the tar
 * entry that announced `size` stays well-formed (GNU tar does the same, with a warning).
 */
export class PadTo extends Transform {
  private seen = 0;
  constructor(private readonly size: number) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    const room = this.size - this.seen;
    this.seen += Math.min(room, chunk.length);
    cb(null, chunk.length > room ? chunk.subarray(0, room) : chunk);
  }
  override _flush(cb: TransformCallback): void {
    for (; this.seen < this.size; this.seen += 1 << 16) this.push(Buffer.alloc(Math.min(1 << 16, this.size - this.seen)));
    cb();
  }
}
