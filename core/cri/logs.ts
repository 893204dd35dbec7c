/**
 * Container logs in the CRI format kubelet reads (`<RFC3339Nano> stdout|stderr F|P <text>`), at
 * the path CreateContainer named. The monitor writes Docker's json-file log; berthd follows it
 * and converts each whole line, so the monitor stays format-agnostic. How far the conversion got
 * is kept next to the container's state (`cri-log.offset`), so a restarted berthd resumes where
 * it stopped instead of writing lines twice. ReopenContainerLog reopens the target after kubelet
 * rotated it.
 */
import { watch, type FSWatcher } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';

const POLL_MS = 250;
const CHUNK = 256 * 1024;

/** One json-file line (`{"log":"text\n","stream":"stdout","time":"..."}`) as a CRI log line. */
export function criLogLine(jsonLine: string): string | undefined {
  let entry: { log?: unknown; stream?: unknown; time?: unknown };
  try {
    entry = JSON.parse(jsonLine);
  } catch {
    return undefined;
  }
  if (typeof entry.log !== 'string' || typeof entry.time !== 'string') return undefined;
  const stream = entry.stream === 'stderr' ? 'stderr' : 'stdout';
  const full = entry.log.endsWith('\n');
  return `${entry.time} ${stream} ${full ? 'F' : 'P'} ${full ? entry.log.slice(0, -1) : entry.log}\n`;
}

export class CriLogFollower {
  private offset = 0;
  private target?: fs.FileHandle;
  private watcher?: FSWatcher;
  private timer?: NodeJS.Timeout;
  private queue: Promise<void> = Promise.resolve();

  constructor(
    private readonly source: string,
    private readonly targetPath: string,
    private readonly offsetFile: string,
  ) {}

  async start(): Promise<void> {
    this.offset = Number(await fs.readFile(this.offsetFile, 'utf8').catch(() => '0')) || 0;
    await this.openTarget();
    try {
      this.watcher = watch(this.source, () => void this.drain());
      this.watcher.on('error', () => undefined);
    } catch {
      // The log appears with the first output: the poll covers it.
    }
    this.timer = setInterval(() => void this.drain(), POLL_MS);
    this.timer.unref();
    await this.drain();
  }

  /** Convert everything whole written so far; runs one at a time. */
  drain(): Promise<void> {
    this.queue = this.queue.then(() => this.convert()).catch(() => undefined);
    return this.queue;
  }

  /** kubelet moved the file away: write on into a new one at the same path. */
  async reopen(): Promise<void> {
    await this.drain();
    await this.target?.close();
    await this.openTarget();
  }

  /** The container ended: convert what is left and let go. */
  async stop(): Promise<void> {
    this.watcher?.close();
    clearInterval(this.timer);
    await this.drain();
    await this.target?.close();
    this.target = undefined;
  }

  private async openTarget(): Promise<void> {
    await fs.mkdir(path.dirname(this.targetPath), { recursive: true });
    this.target = await fs.open(this.targetPath, 'a', 0o640);
  }

  private async convert(): Promise<void> {
    if (!this.target) return;
    const src = await fs.open(this.source, 'r').catch(() => undefined);
    if (!src) return;
    try {
      for (;;) {
        const buf = Buffer.alloc(CHUNK);
        const { bytesRead } = await src.read(buf, 0, CHUNK, this.offset);
        if (!bytesRead) break;
        const text = buf.subarray(0, bytesRead);
        const lastNewline = text.lastIndexOf(0x0a);
        if (lastNewline < 0) break; // a line still being written
        const whole = text.subarray(0, lastNewline + 1).toString('utf8');
        const out = whole.split('\n').slice(0, -1).map(criLogLine).filter(Boolean).join('');
        if (out) await this.target.write(out);
        this.offset += lastNewline + 1;
        await fs.writeFile(this.offsetFile, String(this.offset));
      }
    } finally {
      await src.close();
    }
  }
}
