/**
 * The server side of SPDY/3.1 as Kubernetes' streaming clients speak it (Go's spdystream, used by
 * kubelet's and crictl's remotecommand and port-forward): the client opens streams with SYN_STREAM
 * carrying its own headers (streamtype, port, requestid; no :method or :path, so HTTP-minded SPDY
 * libraries refuse them), the server accepts each with SYN_REPLY, and both sides send DATA frames
 * until FIN. Header blocks are one zlib stream per direction, primed with the SPDY/3 dictionary.
 * spdystream keeps no flow-control windows, so none are enforced here; WINDOW_UPDATEs are sent
 * for what arrives, for clients that do count.
 */
import { EventEmitter } from 'node:events';
import { Duplex } from 'node:stream';
import * as zlib from 'node:zlib';

/** The SPDY/3 header compression dictionary (draft-mbelshe-httpbis-spdy-00, 2.6.10.1). */
const DICTIONARY = (() => {
  const words = [
    'options',
    'head',
    'post',
    'put',
    'delete',
    'trace',
    'accept',
    'accept-charset',
    'accept-encoding',
    'accept-language',
    'accept-ranges',
    'age',
    'allow',
    'authorization',
    'cache-control',
    'connection',
    'content-base',
    'content-encoding',
    'content-language',
    'content-length',
    'content-location',
    'content-md5',
    'content-range',
    'content-type',
    'date',
    'etag',
    'expect',
    'expires',
    'from',
    'host',
    'if-match',
    'if-modified-since',
    'if-none-match',
    'if-range',
    'if-unmodified-since',
    'last-modified',
    'location',
    'max-forwards',
    'pragma',
    'proxy-authenticate',
    'proxy-authorization',
    'range',
    'referer',
    'retry-after',
    'server',
    'te',
    'trailer',
    'transfer-encoding',
    'upgrade',
    'user-agent',
    'vary',
    'via',
    'warning',
    'www-authenticate',
    'method',
    'get',
    'status',
    '200 OK',
    'version',
    'HTTP/1.1',
    'url',
    'public',
    'set-cookie',
    'keep-alive',
    'origin',
  ];
  const tail =
    '100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505' +
    '203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 Unauthorized' +
    '403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 Service Unavailable' +
    'Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT' +
    'chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,' +
    'text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.';
  const parts = words.map((w) => {
    const b = Buffer.alloc(4 + w.length);
    b.writeUInt32BE(w.length, 0);
    b.write(w, 4, 'latin1');
    return b;
  });
  return Buffer.concat([...parts, Buffer.from(tail, 'latin1')]);
})();

const VERSION = 3;
const SYN_STREAM = 1;
const SYN_REPLY = 2;
const RST_STREAM = 3;
const PING = 6;
const GOAWAY = 7;
const WINDOW_UPDATE = 9;
const FLAG_FIN = 0x01;
const RST_PROTOCOL_ERROR = 1;
/** A DATA frame's payload stays below this, well under the 24-bit limit. */
const MAX_DATA = 64 * 1024 - 1;

export type SpdyHeaders = Record<string, string>;

/**
 * One stream the client opened, as a Duplex: what the client sends is readable (buffered until
 * read), what is written goes out in DATA frames, end() sends FIN.
 */
export class SpdyStream extends Duplex {
  localClosed = false;
  remoteClosed = false;

  constructor(
    private readonly session: SpdySession,
    readonly id: number,
    readonly headers: SpdyHeaders,
  ) {
    super({ allowHalfOpen: true });
  }

  override _read(): void {
    /* received data is pushed as it arrives */
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
    for (let off = 0; off < chunk.length; off += MAX_DATA) this.session.sendData(this.id, chunk.subarray(off, off + MAX_DATA), false);
    done();
  }

  override _final(done: () => void): void {
    this.localClosed = true;
    this.session.sendData(this.id, Buffer.alloc(0), true);
    this.session.forgetIfDone(this);
    done();
  }

  /** @internal */
  receive(data: Buffer, fin: boolean): void {
    if (data.length && !this.remoteClosed) this.push(data);
    if (fin && !this.remoteClosed) {
      this.remoteClosed = true;
      this.push(null);
      this.session.forgetIfDone(this);
    }
  }

  /** @internal the session is gone or the client reset the stream. */
  abort(): void {
    this.localClosed = this.remoteClosed = true;
    this.destroy();
  }
}

/**
 * A SPDY/3.1 server session on an upgraded connection. 'stream' fires for each SYN_STREAM after
 * its SYN_REPLY went out; 'close' once, when the connection ends.
 */
export class SpdySession extends EventEmitter {
  private readonly streams = new Map<number, SpdyStream>();
  private pending: Buffer = Buffer.alloc(0);
  private readonly inflate = zlib.createInflate({ dictionary: DICTIONARY });
  private readonly deflate = zlib.createDeflate({ dictionary: DICTIONARY });
  /** Frames are handled one at a time: header blocks inflate asynchronously, in order. */
  private queue: Promise<void> = Promise.resolve();
  private closed = false;
  private lastStreamId = 0;

  constructor(private readonly socket: Duplex) {
    super();
    this.inflate.on('error', (err) => this.fail(err));
    this.deflate.on('error', (err) => this.fail(err));
    socket.on('data', (chunk: Buffer) => this.onBytes(chunk));
    socket.on('error', () => this.close());
    socket.on('close', () => this.close());
    socket.on('end', () => this.close());
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const s of this.streams.values()) s.abort();
    this.streams.clear();
    this.inflate.close();
    this.deflate.close();
    this.socket.end();
    this.socket.destroy();
    this.emit('close');
  }

  /** Tell the client we are done (GOAWAY), then close once what we wrote is flushed. */
  goAway(): void {
    if (this.closed) return;
    // Last good stream: every stream the client opened was handled; status 0 is OK.
    this.sendControl(GOAWAY, 0, Buffer.concat([u32(this.lastStreamId), u32(0)]));
    this.queue = this.queue.then(() => new Promise<void>((resolve) => this.socket.end(resolve))).then(() => this.close());
  }

  private fail(err: Error): void {
    this.emit('protocolError', err);
    this.close();
  }

  private onBytes(chunk: Buffer): void {
    this.pending = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    while (this.pending.length >= 8) {
      const length = this.pending.readUIntBE(5, 3);
      if (this.pending.length < 8 + length) break;
      const frame = this.pending.subarray(0, 8 + length);
      this.pending = this.pending.subarray(8 + length);
      this.queue = this.queue.then(() => this.onFrame(frame)).catch((err) => this.fail(err as Error));
    }
  }

  private async onFrame(frame: Buffer): Promise<void> {
    if (this.closed) return;
    const flags = frame[4];
    const body = frame.subarray(8);
    if (!(frame[0] & 0x80)) {
      const id = frame.readUInt32BE(0) & 0x7fffffff;
      const stream = this.streams.get(id);
      if (body.length) this.windowUpdate(id, body.length);
      stream?.receive(body, !!(flags & FLAG_FIN));
      return;
    }
    const type = frame.readUInt16BE(2);
    switch (type) {
      case SYN_STREAM: {
        const id = body.readUInt32BE(0) & 0x7fffffff;
        const headers = await this.inflateHeaders(body.subarray(10));
        if (this.streams.has(id) || id % 2 === 0) return this.reset(id, RST_PROTOCOL_ERROR);
        const stream = new SpdyStream(this, id, headers);
        this.streams.set(id, stream);
        this.lastStreamId = Math.max(this.lastStreamId, id);
        await this.reply(id);
        this.emit('stream', stream);
        if (flags & FLAG_FIN) stream.receive(Buffer.alloc(0), true);
        return;
      }
      case RST_STREAM: {
        const id = body.readUInt32BE(0) & 0x7fffffff;
        const stream = this.streams.get(id);
        this.streams.delete(id);
        stream?.abort();
        return;
      }
      case PING:
        this.sendControl(PING, 0, body);
        return;
      case GOAWAY:
        this.close();
        return;
      default:
        // SETTINGS, WINDOW_UPDATE, HEADERS, NOOP: nothing this server needs from them.
        return;
    }
  }

  private inflateHeaders(block: Buffer): Promise<SpdyHeaders> {
    return new Promise((resolve, reject) => {
      const out: Buffer[] = [];
      const onData = (c: Buffer) => out.push(c);
      this.inflate.on('data', onData);
      this.inflate.write(block);
      this.inflate.flush(zlib.constants.Z_SYNC_FLUSH, () => {
        this.inflate.off('data', onData);
        try {
          resolve(parseHeaderBlock(Buffer.concat(out)));
        } catch (err) {
          reject(err);
        }
      });
    });
  }

  private deflateHeaders(headers: SpdyHeaders): Promise<Buffer> {
    const entries = Object.entries(headers);
    const parts: Buffer[] = [u32(entries.length)];
    for (const [k, v] of entries) parts.push(u32(Buffer.byteLength(k)), Buffer.from(k), u32(Buffer.byteLength(v)), Buffer.from(v));
    return new Promise((resolve) => {
      const out: Buffer[] = [];
      const onData = (c: Buffer) => out.push(c);
      this.deflate.on('data', onData);
      this.deflate.write(Buffer.concat(parts));
      this.deflate.flush(zlib.constants.Z_SYNC_FLUSH, () => {
        this.deflate.off('data', onData);
        resolve(Buffer.concat(out));
      });
    });
  }

  /** The status headers tell HTTP-minded SPDY clients the stream is accepted; spdystream ignores them. */
  private async reply(id: number): Promise<void> {
    const block = await this.deflateHeaders({ ':status': '200', ':version': 'HTTP/1.1' });
    this.sendControl(SYN_REPLY, 0, Buffer.concat([u32(id), block]));
  }

  private reset(id: number, status: number): void {
    this.sendControl(RST_STREAM, 0, Buffer.concat([u32(id), u32(status)]));
  }

  private windowUpdate(id: number, delta: number): void {
    this.sendControl(WINDOW_UPDATE, 0, Buffer.concat([u32(id), u32(delta)]));
    this.sendControl(WINDOW_UPDATE, 0, Buffer.concat([u32(0), u32(delta)]));
  }

  private sendControl(type: number, flags: number, body: Buffer): void {
    if (this.closed) return;
    const head = Buffer.alloc(8);
    head.writeUInt16BE(0x8000 | VERSION, 0);
    head.writeUInt16BE(type, 2);
    head[4] = flags;
    head.writeUIntBE(body.length, 5, 3);
    this.socket.write(Buffer.concat([head, body]));
  }

  /** @internal */
  sendData(id: number, data: Buffer, fin: boolean): void {
    if (this.closed) return;
    const head = Buffer.alloc(8);
    head.writeUInt32BE(id & 0x7fffffff, 0);
    head[4] = fin ? FLAG_FIN : 0;
    head.writeUIntBE(data.length, 5, 3);
    this.socket.write(Buffer.concat([head, data]));
  }

  /** @internal a stream closed both ways is no longer tracked. */
  forgetIfDone(stream: SpdyStream): void {
    if (stream.localClosed && stream.remoteClosed) this.streams.delete(stream.id);
  }
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0, 0);
  return b;
}

/** A SPDY/3 name/value block: names lower-case; several values of one name joined by NUL. */
function parseHeaderBlock(b: Buffer): SpdyHeaders {
  const headers: SpdyHeaders = {};
  let off = 0;
  const take = (): string => {
    if (off + 4 > b.length) throw new Error('SPDY header block is truncated');
    const n = b.readUInt32BE(off);
    if (off + 4 + n > b.length) throw new Error('SPDY header block is truncated');
    const s = b.toString('utf8', off + 4, off + 4 + n);
    off += 4 + n;
    return s;
  };
  const count = b.length >= 4 ? b.readUInt32BE(0) : 0;
  off = 4;
  for (let i = 0; i < count; i++) {
    const name = take().toLowerCase();
    headers[name] = take();
  }
  return headers;
}
