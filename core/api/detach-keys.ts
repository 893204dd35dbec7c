/**
 * Detach keys, as dockerd reads them: a comma-separated list (`ctrl-p,ctrl-q` by default) of
 * `ctrl-X` (X in a-z, @, [, \, ], ^, _) or single characters. On an attached TTY's stdin the
 * sequence detaches the client; bytes that only begin the sequence are held until it is clear
 * whether they complete it, and are passed on when they do not.
 */
import { InvalidArgumentError } from '../contracts/errors';

export const DEFAULT_DETACH_KEYS = 'ctrl-p,ctrl-q';

const CTRL_SPECIAL: Record<string, number> = { '@': 0, '[': 27, '\\': 28, ']': 29, '^': 30, _: 31 };

export function parseDetachKeys(spec: string): Buffer {
  const bytes: number[] = [];
  for (const key of spec.split(',')) {
    const k = key.trim();
    if (k.length === 1) bytes.push(k.charCodeAt(0));
    else if (/^ctrl-[a-z]$/.test(k)) bytes.push(k.charCodeAt(5) - 96);
    else if (k.startsWith('ctrl-') && k.length === 6 && k[5] in CTRL_SPECIAL) bytes.push(CTRL_SPECIAL[k[5]]);
    else throw new InvalidArgumentError(`Invalid detach keys (${spec}) provided: unknown character ${JSON.stringify(k)}`);
  }
  if (!bytes.length) throw new InvalidArgumentError(`Invalid detach keys (${spec}) provided`);
  return Buffer.from(bytes);
}

/** Watches a stdin stream for the detach sequence. */
export class DetachWatcher {
  private matched = 0;

  constructor(private readonly keys: Buffer) {}

  /** The bytes to pass on for this chunk, and whether the sequence completed (the rest is dropped, as dockerd does). */
  feed(chunk: Buffer): { pass: Buffer; detach: boolean } {
    const out: number[] = [];
    for (const byte of chunk) {
      if (byte === this.keys[this.matched]) {
        if (++this.matched === this.keys.length) return { pass: Buffer.from(out), detach: true };
        continue;
      }
      // Not the sequence after all: what was held goes through, then this byte may start it over
      // (a one-key sequence never gets here: its key matched above).
      for (let i = 0; i < this.matched; i++) out.push(this.keys[i]);
      this.matched = byte === this.keys[0] ? 1 : 0;
      if (!this.matched) out.push(byte);
    }
    return { pass: Buffer.from(out), detach: false };
  }
}
