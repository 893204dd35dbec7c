/** Terminal output helpers for the CLI: tables and Docker-style progress. */
import { humanDuration } from '../util/format';

/** The template engine, loaded by the commands that print through it: it is a third of `berth run`'s module load. */
function template(): typeof import('./template') {
  return require('./template');
}

/** A table as docker's tabwriter prints it: columns at least 10 wide, three spaces apart. */
export function table(headers: string[], rows: string[][]): string {
  return template().tabwrite([headers, ...rows].map((r) => r.join('\t') + '\n').join(''));
}

/** `inspect` output: indented JSON like docker's, or each object through `-f`'s template. */
export function printInspected(found: unknown[], format: string | undefined): string {
  return format ? template().renderEach(format, found) : JSON.stringify(found, null, 4) + '\n';
}

export function ago(unixSeconds: number): string {
  if (!unixSeconds) return 'N/A';
  return `${humanDuration(Date.now() - unixSeconds * 1000)} ago`;
}

export function shortId(id: string): string {
  return id.replace(/^sha256:/, '').slice(0, 12);
}

export function truncate(s: string, n: number): string {
  return s.length > n ? s.slice(0, n - 1) + '…' : s;
}

/**
 * Render Docker's JSON progress stream. On a TTY each id keeps one line, rewritten in place
 * (Downloading bars included); off a TTY, plain lines and no bars. Returns the error message, if any.
 */
export class ProgressRenderer {
  private readonly ids: string[] = [];
  private readonly lines = new Map<string, string>();
  error?: string;

  constructor(
    private readonly out: NodeJS.WriteStream,
    private readonly tty = !!out.isTTY,
  ) {}

  handle(msg: { id?: string; status?: string; progress?: string; progressDetail?: { current?: number }; error?: string; errorDetail?: { message?: string } }): void {
    if (msg.error || msg.errorDetail) {
      this.error = msg.errorDetail?.message ?? msg.error;
      return;
    }
    const text = msg.id ? `${msg.id}: ${msg.status ?? ''}${this.tty && msg.progress ? ` ${msg.progress}` : ''}` : (msg.status ?? '');
    // Layer lines are keyed by id; the first "tag: Pulling from repo" line is a plain header.
    const keyed = msg.id && !msg.status?.startsWith('Pulling from');
    if (!this.tty) {
      if (msg.progressDetail?.current !== undefined) return;
      this.out.write(text + '\n');
      return;
    }
    if (!keyed) {
      this.out.write(text + '\n');
      return;
    }
    if (!this.lines.has(msg.id!)) {
      this.ids.push(msg.id!);
      this.lines.set(msg.id!, text);
      this.out.write(text + '\n');
      return;
    }
    this.lines.set(msg.id!, text);
    const up = this.ids.length - this.ids.indexOf(msg.id!);
    // Move up to the id's line, rewrite it, and come back down.
    this.out.write(`\x1b[${up}A\r\x1b[2K${text}\x1b[${up}B\r`);
  }
}

/** Run `fn` for each name, echo the names that succeeded, report the others; exit 1 if any failed. */
export async function forEachName(names: string[], out: NodeJS.WriteStream, fn: (name: string) => Promise<unknown>): Promise<number> {
  let code = 0;
  for (const n of names) {
    try {
      await fn(n);
      out.write(n + '\n');
    } catch (e) {
      process.stderr.write(`Error response from daemon: ${(e as Error).message}\n`);
      code = 1;
    }
  }
  return code;
}
