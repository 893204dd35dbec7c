/** Stream helpers shared by the image importers and the builder. */
import { Readable } from 'node:stream';

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
