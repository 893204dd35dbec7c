/**
 * Output of an OCI-run container. runc hands its own stdio to a non-terminal container, so the
 * monitor shell points runc's stdout and stderr at two append-only raw files in the state dir;
 * the container never blocks on a reader. berthd converts what is new in them into Docker's
 * json-file log (`container.log`) and relays it to attach clients.
 *
 * Limitation (documented in docs/plugins.md): the conversion runs in berthd. While berthd is down
 * the raw files keep growing; a restarted berthd resumes from the offsets saved next to them.
 */
import { EventEmitter } from 'node:events';
import { watch, type FSWatcher } from 'node:fs';
import { appendFile, open, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export const RAW_STDOUT = 'oci-stdout';
export const RAW_STDERR = 'oci-stderr';
const OFFSETS = 'oci-log-offsets.json';

type Stream = 'stdout' | 'stderr';

/** Tails the two raw files into the json-file log; 'data' (stream, Buffer) for attach clients. */
export class LogPump extends EventEmitter {
  private offsets: Record<Stream, number> = { stdout: 0, stderr: 0 };
  /** Bytes after the last newline, held back until the line ends or the process exits. */
  private partial: Record<Stream, Buffer> = { stdout: Buffer.alloc(0), stderr: Buffer.alloc(0) };
  private watcher?: FSWatcher;
  private timer?: NodeJS.Timeout;
  private running: Promise<void> = Promise.resolve();
  private loaded = false;

  constructor(
    private readonly stateDir: string,
    private readonly logPath: string,
  ) {
    super();
    this.setMaxListeners(0);
  }

  /** Start following; changes are picked up by inotify, with a slow poll as a safety net. */
  follow(): void {
    try {
      this.watcher = watch(this.stateDir, (_e, name) => {
        if (name === RAW_STDOUT || name === RAW_STDERR) this.pump();
      });
      this.watcher.on('error', () => undefined);
    } catch {
      /* no inotify: the poll still gets there */
    }
    this.timer = setInterval(() => this.pump(), 250);
    this.pump();
  }

  /** Read what is new in both files; calls are queued so lines never interleave mid-way. */
  pump(final = false): Promise<void> {
    this.running = this.running.then(() => this.pumpOnce(final)).catch(() => undefined);
    return this.running;
  }

  /** Drain everything (the process exited), flush partial lines, stop following. */
  async finish(): Promise<void> {
    this.stop();
    await this.pump(true);
  }

  stop(): void {
    this.watcher?.close();
    clearInterval(this.timer);
    this.watcher = undefined;
    this.timer = undefined;
  }

  private async pumpOnce(final: boolean): Promise<void> {
    if (!this.loaded) {
      this.loaded = true;
      const saved = await readFile(join(this.stateDir, OFFSETS), 'utf8').then(
        (t) => JSON.parse(t) as Record<Stream, number>,
        () => undefined,
      );
      if (saved) this.offsets = { stdout: saved.stdout | 0, stderr: saved.stderr | 0 };
    }
    let moved = false;
    for (const stream of ['stdout', 'stderr'] as const) {
      const fresh = await this.readNew(stream);
      if (fresh.length) moved = true;
      const text = Buffer.concat([this.partial[stream], fresh]);
      const cut = final ? text.length : text.lastIndexOf(0x0a) + 1;
      this.partial[stream] = text.subarray(cut);
      if (!cut) continue;
      const complete = text.subarray(0, cut);
      const time = new Date().toISOString();
      const lines = complete
        .toString('utf8')
        .split(/(?<=\n)/)
        .filter(Boolean);
      await appendFile(this.logPath, lines.map((log) => JSON.stringify({ log, stream, time }) + '\n').join(''));
      this.emit('data', stream, complete);
    }
    if (moved) await writeFile(join(this.stateDir, OFFSETS), JSON.stringify(this.offsets)).catch(() => undefined);
  }

  private async readNew(stream: Stream): Promise<Buffer> {
    const file = join(this.stateDir, stream === 'stdout' ? RAW_STDOUT : RAW_STDERR);
    const fh = await open(file, 'r').catch(() => undefined);
    if (!fh) return Buffer.alloc(0);
    try {
      const { size } = await fh.stat();
      if (size <= this.offsets[stream]) return Buffer.alloc(0);
      const length = size - this.offsets[stream];
      const buf = Buffer.alloc(length);
      const { bytesRead } = await fh.read(buf, 0, length, this.offsets[stream]);
      this.offsets[stream] += bytesRead;
      return buf.subarray(0, bytesRead);
    } finally {
      await fh.close();
    }
  }
}
