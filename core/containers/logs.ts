/**
 * Reading Docker json-file logs (one `{"log","stream","time"}` object per line), with tail,
 * since/until, timestamps and follow.
 */
import * as fs from 'node:fs';

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

function parseLines(text: string): LogEntry[] {
  const out: LogEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    try {
      out.push(JSON.parse(line));
    } catch {
      /* a torn last line while the monitor writes: the follow loop reads it again */
    }
  }
  return out;
}

export async function* readLogs(file: string, opts: LogOptions): AsyncGenerator<LogEntry> {
  const keep = (e: LogEntry) => {
    if (e.stream === 'stdout' ? !opts.stdout : !opts.stderr) return false;
    const t = Date.parse(e.time) / 1000;
    if (opts.since && t < opts.since) return false;
    if (opts.until && t > opts.until) return false;
    return true;
  };
  let offset = 0;
  let text = '';
  try {
    text = await fs.promises.readFile(file, 'utf8');
  } catch {
    /* no log yet */
  }
  const complete = text.lastIndexOf('\n') + 1;
  offset = Buffer.byteLength(text.slice(0, complete));
  let entries = parseLines(text.slice(0, complete)).filter(keep);
  if (opts.tail !== undefined && opts.tail >= 0) entries = opts.tail === 0 ? [] : entries.slice(-opts.tail);
  yield* entries;
  if (!opts.follow) return;
  while (!opts.signal.aborted) {
    const live = opts.isLive();
    let chunk = '';
    try {
      const fh = await fs.promises.open(file, 'r');
      try {
        const { size } = await fh.stat();
        if (size > offset) {
          const buf = Buffer.alloc(size - offset);
          await fh.read(buf, 0, buf.length, offset);
          chunk = buf.toString('utf8');
        }
      } finally {
        await fh.close();
      }
    } catch {
      /* not created yet */
    }
    const end = chunk.lastIndexOf('\n') + 1;
    if (end > 0) {
      offset += Buffer.byteLength(chunk.slice(0, end));
      yield* parseLines(chunk.slice(0, end)).filter(keep);
    } else if (!live) return;
    if (end === 0) await new Promise((r) => setTimeout(r, 50));
  }
}

/** Docker's stream multiplexing header: [stream, 0, 0, 0, size (uint32 BE)] then the payload. */
export function muxFrame(stream: 1 | 2, payload: Buffer): Buffer {
  const header = Buffer.alloc(8);
  header[0] = stream;
  header.writeUInt32BE(payload.length, 4);
  return Buffer.concat([header, payload]);
}
