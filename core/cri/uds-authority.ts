/**
 * gRPC-Go before 1.53 (crictl and kubelet up to Kubernetes 1.26) sends the Unix socket's path as
 * the HTTP/2 `:authority`, e.g. `/run/berth/cri.sock`. nghttp2, under Node's http2 server, refuses
 * such a request with RST_STREAM PROTOCOL_ERROR: `/` is no authority character (RFC 3986), and
 * Node has no switch for that check. This stream sits between the socket and grpc-js: it decodes
 * every header block the client sends (HPACK keeps per-connection state, so all of them), puts
 * `localhost` where the authority is not one, and re-encodes the block as literals that never
 * touch the server's HPACK table. Every other frame passes through unchanged.
 */
import type { Socket } from 'node:net';
import { Duplex } from 'node:stream';
// hpack.js ships no types: only the decompressor is used.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const hpack = require('hpack.js') as {
  decompressor: { create(o: { table: { size: number } }): HpackDecoder };
};

interface HpackDecoder {
  write(b: Buffer): void;
  execute(): void;
  on(event: 'error', listener: (err: Error) => void): void;
  read(): { name: string; value: string } | null;
}

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
const FRAME_HEADER = 9;
const HEADERS = 0x1;
const CONTINUATION = 0x9;
const END_STREAM = 0x1;
const END_HEADERS = 0x4;
const PADDED = 0x8;
const PRIORITY = 0x20;
/** The smallest SETTINGS_MAX_FRAME_SIZE a peer may have: frames we write stay within it. */
const MAX_FRAME = 16384;
/** nghttp2's authority characters (RFC 3986 reg-name, IP literal and port). */
const AUTHORITY = /^[A-Za-z0-9\-._~!$&'()*+,;=:@[\]%]*$/;

/** An HPACK integer with an N-bit prefix (RFC 7541 5.1); `first` holds the pattern bits. */
function hpackInt(value: number, prefixBits: number, first: number): number[] {
  const max = (1 << prefixBits) - 1;
  if (value < max) return [first | value];
  const out = [first | max];
  for (value -= max; value >= 128; value = Math.floor(value / 128)) out.push((value % 128) + 128);
  out.push(value);
  return out;
}

/** Literal header fields without indexing, new name, no Huffman (RFC 7541 6.2.2). */
function encodeLiterals(headers: { name: string; value: string }[]): Buffer {
  const parts: Buffer[] = [];
  for (const { name, value } of headers) {
    const n = Buffer.from(name, 'latin1');
    const v = Buffer.from(value, 'latin1');
    parts.push(Buffer.from([0x00, ...hpackInt(n.length, 7, 0)]), n, Buffer.from(hpackInt(v.length, 7, 0)), v);
  }
  return Buffer.concat(parts);
}

function frame(type: number, flags: number, stream: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(FRAME_HEADER);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(stream, 5);
  return Buffer.concat([head, payload]);
}

export class AuthorityFixingStream extends Duplex {
  private pending: Buffer = Buffer.alloc(0);
  private prefaceSeen = false;
  private passThrough = false;
  private readonly decoder = hpack.decompressor.create({ table: { size: 4096 } });
  /** A header block split over CONTINUATION frames, until END_HEADERS. */
  private block?: { stream: number; flags: number; parts: Buffer[] };
  private hpackError?: Error;

  constructor(private readonly socket: Socket) {
    super();
    this.decoder.on('error', (err) => (this.hpackError = err));
    socket.on('data', (chunk: Buffer) => {
      try {
        this.fromClient(chunk);
      } catch (err) {
        this.destroy(err as Error);
      }
    });
    socket.on('end', () => this.push(null));
    socket.on('error', (err) => this.destroy(err));
    socket.on('close', () => this.destroy());
  }

  private fromClient(chunk: Buffer): void {
    if (this.passThrough) return this.forward(chunk);
    this.pending = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    if (!this.prefaceSeen) {
      if (this.pending.length < PREFACE.length) return;
      if (!this.pending.subarray(0, PREFACE.length).equals(PREFACE)) {
        // Not HTTP/2 with prior knowledge: hand everything on as it is and let the server answer.
        this.passThrough = true;
        this.forward(this.pending);
        this.pending = Buffer.alloc(0);
        return;
      }
      this.forward(this.pending.subarray(0, PREFACE.length));
      this.pending = this.pending.subarray(PREFACE.length);
      this.prefaceSeen = true;
    }
    while (this.pending.length >= FRAME_HEADER) {
      const length = this.pending.readUIntBE(0, 3);
      if (this.pending.length < FRAME_HEADER + length) break;
      const type = this.pending[3];
      const flags = this.pending[4];
      const stream = this.pending.readUInt32BE(5) & 0x7fffffff;
      const whole = this.pending.subarray(0, FRAME_HEADER + length);
      this.pending = this.pending.subarray(FRAME_HEADER + length);
      if (type === HEADERS) this.startBlock(stream, flags, whole.subarray(FRAME_HEADER));
      else if (type === CONTINUATION && this.block?.stream === stream) this.continueBlock(flags, whole.subarray(FRAME_HEADER));
      else this.forward(whole);
    }
  }

  private startBlock(stream: number, flags: number, payload: Buffer): void {
    let start = 0;
    let end = payload.length;
    if (flags & PADDED) {
      end -= payload[0];
      start = 1;
    }
    if (flags & PRIORITY) start += 5;
    if (start > end) throw new Error('HTTP/2 HEADERS frame: padding longer than the frame');
    this.block = { stream, flags, parts: [payload.subarray(start, end)] };
    if (flags & END_HEADERS) this.endBlock();
  }

  private continueBlock(flags: number, payload: Buffer): void {
    this.block!.parts.push(payload);
    if (flags & END_HEADERS) this.endBlock();
  }

  private endBlock(): void {
    const { stream, flags, parts } = this.block!;
    this.block = undefined;
    this.decoder.write(Buffer.concat(parts));
    this.decoder.execute();
    const headers: { name: string; value: string }[] = [];
    for (let h = this.decoder.read(); h !== null; h = this.decoder.read()) {
      headers.push(h.name === ':authority' && !AUTHORITY.test(h.value) ? { name: h.name, value: 'localhost' } : h);
    }
    if (this.hpackError) throw new Error(`HTTP/2 header block: ${this.hpackError.message}`);
    const encoded = encodeLiterals(headers);
    for (let offset = 0, first = true; first || offset < encoded.length; first = false, offset += MAX_FRAME) {
      const last = offset + MAX_FRAME >= encoded.length;
      const frameFlags = (first ? flags & END_STREAM : 0) | (last ? END_HEADERS : 0);
      this.forward(frame(first ? HEADERS : CONTINUATION, frameFlags, stream, encoded.subarray(offset, offset + MAX_FRAME)));
    }
  }

  private forward(bytes: Buffer): void {
    if (!this.push(Buffer.from(bytes))) this.socket.pause();
  }

  override _read(): void {
    this.socket.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
    this.socket.write(chunk, done);
  }

  override _final(done: () => void): void {
    this.socket.end(done);
  }

  override _destroy(err: Error | null, done: (err: Error | null) => void): void {
    this.socket.destroy();
    done(err);
  }
}
