/**
 * Reading Docker json-file logs (one `{"log","stream","time"}` object per line), with tail,
 * since/until, timestamps and follow. The monitor rotates the log as dockerd does (`<log>.N` ...
 * `<log>.1` are older, `<log>` is current), so reading goes through the rotated files oldest
 * first, and follow carries on across a rotation or a truncation in place. Files are read in
 * chunks as the consumer asks for entries, never whole, so a slow reader holds no more than a chunk.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface LogEntry {
  log: string;
  stream: 'stdout' | 'stderr';
  time: string;
}

export interface LogOptions {
  stdout: boolean;
  stderr: boolean;
  tail?: number;
  since?: number;
  until?: number;
  follow: boolean;
  /** While this says the writer may still append, follow keeps reading. */
  isLive: () => boolean;
  signal: AbortSignal;
}

const CHUNK = 64 * 1024;
const NEWLINE = 0x0a;
const FOLLOW_POLL_MS = 50;

type FileHandle = fs.promises.FileHandle;

function parseLine(line: Buffer): LogEntry | undefined {
  try {
    return JSON.parse(line.toString('utf8'));
  } catch {
    return undefined; /* a line cut by a truncation in place: skip it */
  }
}

/** The log's rotated files, oldest first (`<log>.3`, `<log>.2`, `<log>.1`), opened at once. */
async function openRotated(file: string): Promise<FileHandle[]> {
  const base = path.basename(file);
  const names = await fs.promises.readdir(path.dirname(file)).catch(() => [] as string[]);
  const numbers = names
    .filter((n) => n.startsWith(`${base}.`) && /^[1-9]\d*$/.test(n.slice(base.length + 1)))
    .map((n) => Number(n.slice(base.length + 1)))
    .sort((a, b) => b - a);
  const handles: FileHandle[] = [];
  for (const n of numbers) {
    const fh = await fs.promises.open(`${file}.${n}`, 'r').catch(() => undefined);
    if (fh) handles.push(fh);
  }
  return handles;
}

async function readAt(fh: FileHandle, position: number, length: number): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  const { bytesRead } = await fh.read(buf, 0, length, position);
  return buf.subarray(0, bytesRead);
}

/** Whole lines in [from, to) as Buffers without their newline; `at.offset` follows each one. */
async function* linesBetween(fh: FileHandle, from: number, to: number, at: { offset: number }): AsyncGenerator<Buffer> {
  let pos = from;
  let pending: Buffer = Buffer.alloc(0);
  at.offset = from;
  while (pos < to) {
    const chunk = await readAt(fh, pos, Math.min(CHUNK, to - pos));
    if (!chunk.length) return;
    pos += chunk.length;
    const buf = pending.length ? Buffer.concat([pending, chunk]) : chunk;
    let start = 0;
    for (let nl = buf.indexOf(NEWLINE); nl >= 0; nl = buf.indexOf(NEWLINE, start)) {
      const line = buf.subarray(start, nl);
      start = nl + 1;
      at.offset += line.length + 1;
      yield line;
    }
    pending = buf.subarray(start);
  }
}

/**
 * Where reading starts so that the last `count` kept entries come out: [file index, offset],
 * found by reading the files backwards in chunks, newest first.
 */
async function tailStart(files: { fh: FileHandle; end: number }[], count: number, keep: (e: LogEntry) => boolean): Promise<[number, number]> {
  let found = 0;
  for (let i = files.length - 1; i >= 0; i--) {
    // `buf` holds the bytes [bufStart, lineEnd) of the file, ending with a line's newline.
    let bufStart = files[i].end;
    let buf: Buffer = Buffer.alloc(0);
    for (;;) {
      const prevNl = buf.length >= 2 ? buf.lastIndexOf(NEWLINE, buf.length - 2) : -1;
      if (prevNl < 0 && bufStart > 0) {
        const start = Math.max(0, bufStart - CHUNK);
        buf = Buffer.concat([await readAt(files[i].fh, start, bufStart - start), buf]);
        bufStart = start;
        continue;
      }
      if (!buf.length) break;
      const lineStart = prevNl + 1;
      const entry = parseLine(buf.subarray(lineStart, buf.length - 1));
      if (entry && keep(entry) && ++found === count) return [i, bufStart + lineStart];
      buf = buf.subarray(0, lineStart);
    }
  }
  return [0, 0];
}

export async function* readLogs(file: string, opts: LogOptions): AsyncGenerator<LogEntry> {
  const keep = (e: LogEntry) => {
    if (e.stream === 'stdout' ? !opts.stdout : !opts.stderr) return false;
    const t = Date.parse(e.time) / 1000;
    if (opts.since && t < opts.since) return false;
    if (opts.until && t > opts.until) return false;
    return true;
  };
  const at = { offset: 0 };
  async function* kept(fh: FileHandle, from: number, to: number): AsyncGenerator<LogEntry> {
    for await (const line of linesBetween(fh, from, to, at)) {
      const entry = parseLine(line);
      if (entry && keep(entry)) yield entry;
    }
  }
  const rotated = await openRotated(file);
  let current = await fs.promises.open(file, 'r').catch(() => undefined);
  try {
    const files: { fh: FileHandle; end: number }[] = [];
    for (const fh of [...rotated, ...(current ? [current] : [])]) files.push({ fh, end: (await fh.stat()).size });
    let [first, offset] = [0, 0];
    if (opts.tail === 0) [first, offset] = [files.length, current ? files[files.length - 1].end : 0];
    else if (opts.tail !== undefined && opts.tail > 0) [first, offset] = await tailStart(files, opts.tail, keep);
    for (let i = first; i < files.length; i++) {
      yield* kept(files[i].fh, i === first ? offset : 0, files[i].end);
      offset = at.offset;
    }
    if (!opts.follow) return;
    // Follow the current file from where reading stopped.
    if (!current) offset = 0;
    while (!opts.signal.aborted) {
      const live = opts.isLive();
      let progressed = false;
      current ??= await fs.promises.open(file, 'r').catch(() => undefined);
      if (current) {
        const { size, ino } = await current.stat();
        if (size < offset) offset = 0; // truncated in place (max-file=1)
        yield* kept(current, offset, size);
        progressed = at.offset > offset;
        offset = at.offset;
        const named = await fs.promises.stat(file).catch(() => undefined);
        if (!progressed && named && named.ino !== ino) {
          // Rotated: the name is a new file now; what reached the old one before is read first.
          yield* kept(current, offset, (await current.stat()).size);
          await current.close();
          current = undefined;
          offset = 0;
          progressed = true;
        }
      }
      if (progressed) continue;
      if (!live) return;
      await new Promise((r) => setTimeout(r, FOLLOW_POLL_MS));
    }
  } finally {
    await Promise.all([...rotated, ...(current ? [current] : [])].map((fh) => fh.close().catch(() => undefined)));
  }
}

/** Docker's stream multiplexing header: [stream, 0, 0, 0, size (uint32 BE)] then the payload. */
export function muxFrame(stream: 1 | 2, payload: Buffer): Buffer {
  const header = Buffer.alloc(8);
  header[0] = stream;
  header.writeUInt32BE(payload.length, 4);
  return Buffer.concat([header, payload]);
}
