/**
 * The build cache: a small index `<root>/build-cache/index.json` of step key -> the image ID the
 * step produced. A key is sha256 of the parent image ID, the instruction after substitution and,
 * for COPY/ADD, the content hash of the sources (see driver.ts). Entries whose image is gone
 * (removed, pruned) are simply misses; they are dropped on the next write. `BuildCacheView` is
 * the cache as one build sees it (--no-cache, --cache-from).
 */
import { createHash } from 'node:crypto';
import * as path from 'node:path';
import type { ImageRecord, ImageStore } from '../images/store';
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

/**
 * Metadata steps make no image, so the cache knows them under keys of their own: `seenKey` names
 * an image the step went into (only to report the hit), `exactKey` the image of the stage as it
 * stood right after the step, made when one was needed (a RUN's, the build's result).
 */
export const seenKey = (key: string) => BuildCache.key(['seen', key]);
export const exactKey = (key: string) => BuildCache.key(['image', key]);

/** The cache as one build sees it: hits only on images that exist and --cache-from allows, none with --no-cache. */
export class BuildCacheView {
  private cacheSourceIds?: Set<string>;

  constructor(
    private readonly cache: BuildCache,
    private readonly images: ImageStore,
    private readonly opts: { noCache?: boolean; cacheFrom?: string[] },
  ) {}

  /** The image the cache holds for `key`, if it still exists (never with --no-cache). */
  async image(key: string): Promise<ImageRecord | undefined> {
    if (this.opts.noCache) return undefined;
    const id = await this.cache.get(key);
    const rec = id ? this.images.get(id) : undefined;
    return rec && this.cacheSources().has(rec.id) ? rec : undefined;
  }

  /** Record that the steps under `keys` ended in image `id`. */
  async record(keys: string[], id: string): Promise<void> {
    await this.cache.set(keys, id, (imageId) => !!this.images.get(imageId));
  }

  /** The images a cache hit may land on: anything, or the --cache-from images and their parents. */
  private cacheSources(): { has(id: string): boolean } {
    if (!this.opts.cacheFrom?.length) return { has: () => true };
    if (!this.cacheSourceIds) {
      this.cacheSourceIds = new Set();
      for (const ref of this.opts.cacheFrom) {
        for (let rec = this.images.find(ref); rec && !this.cacheSourceIds.has(rec.id); rec = rec.parent ? this.images.get(rec.parent) : undefined) {
          this.cacheSourceIds.add(rec.id);
        }
      }
    }
    return this.cacheSourceIds;
  }
}
