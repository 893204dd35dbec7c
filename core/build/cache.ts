/**
 * The build cache: a small index `<root>/build-cache/index.json` of step key -> the image ID the
 * step produced. A key is sha256 of the parent image ID, the instruction after substitution and,
 * for COPY/ADD, the content hash of the sources (see builder.ts). Entries whose image is gone
 * (removed, pruned) are simply misses; they are dropped on the next write.
 */
import { createHash } from 'node:crypto';
import * as path from 'node:path';
import { ensureDir, readJson, writeJsonAtomic } from '../util/fs';
import { Mutex } from '../util/mutex';

interface IndexFile {
  version: 1;
  entries: Record<string, string>;
}

export class BuildCache {
  readonly dir: string;
  private readonly file: string;
  private entries: Record<string, string> | undefined;
  private readonly lock = new Mutex();

  constructor(root: string) {
    this.dir = path.join(root, 'build-cache');
    this.file = path.join(this.dir, 'index.json');
  }

  static key(parts: string[]): string {
    const h = createHash('sha256');
    for (const p of parts) h.update(`${p.length}:${p}\n`);
    return h.digest('hex');
  }

  private async load(): Promise<Record<string, string>> {
    if (!this.entries) {
      await ensureDir(this.dir);
      const data = await readJson<IndexFile>(this.file).catch(() => undefined);
      this.entries = data?.version === 1 && data.entries ? data.entries : {};
    }
    return this.entries;
  }

  async get(key: string): Promise<string | undefined> {
    return (await this.load())[key];
  }

  /** Record steps that ended in one image (one write); `exists` prunes entries whose image no longer exists. */
  async set(keys: string[], imageId: string, exists: (id: string) => boolean): Promise<void> {
    await this.lock.run(async () => {
      const entries = await this.load();
      const next: Record<string, string> = {};
      for (const [k, v] of Object.entries(entries)) if (exists(v)) next[k] = v;
      for (const key of keys) next[key] = imageId;
      await writeJsonAtomic(this.file, { version: 1, entries: next } satisfies IndexFile);
      this.entries = next;
    });
  }
}
