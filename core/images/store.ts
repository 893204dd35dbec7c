/**
 * Image records and tags. An image is known by its ID (the config digest, as in Docker). Records
 * live in `<root>/images/<hex>.json`, tags in `<root>/images/tags.json`; both are written
 * atomically, and a tag is only written after every blob of its image is committed.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Descriptor, ImageRef } from '../contracts/types';
import { ConflictError, InvalidArgumentError, NotFoundError } from '../contracts/errors';
import { digestHex } from '../content/store';
import { ensureDir, readJson, writeJsonAtomic } from '../util/fs';
import { Mutex } from '../util/mutex';
import { familiarReference, formatReference, parseReference, repositoryName } from './reference';

export interface ImageRecord {
  /** The config digest. */
  id: string;
  /** Digest of the manifest the image was pulled or built as (absent for images never serialised). */
  manifestDigest?: string;
  manifestMediaType?: string;
  configDigest: string;
  /** Layer blobs, in order, as the manifest lists them. */
  layers: Descriptor[];
  /** Uncompressed layer digests (config rootfs.diff_ids) and their chain IDs. */
  diffIds: string[];
  chainIds: string[];
  /** `repo@sha256:...` for every registry the manifest came from. */
  repoDigests: string[];
  /** From the config. */
  created?: string;
  architecture: string;
  os: string;
  /** Bytes of the layers (uncompressed on disk once unpacked; compressed until then). */
  size: number;
  /** The image a build step made this one from (Docker hides such intermediate images from `images`). */
  parent?: string;
  /** Bytes each layer occupies in the storage driver, when unpacked. */
  layerSizes?: number[];
  /** When berth recorded it. */
  recorded: string;
}

type Tags = Record<string, string>;

/**
 * Image configs above this are refused wherever one enters the store (pull, load, build): a
 * config is read whole and parsed, and real ones are a few KB. Docker's builder caps at 8 MiB too.
 */
export const MAX_CONFIG_BYTES = 8 * 1024 * 1024;

/** Refuse a config of `size` bytes over MAX_CONFIG_BYTES, naming the image. */
export function checkConfigSize(size: number, image: string): void {
  if (size > MAX_CONFIG_BYTES) {
    throw new InvalidArgumentError(`image config of ${image} is ${size} bytes, larger than the ${MAX_CONFIG_BYTES / (1024 * 1024)} MiB limit (${MAX_CONFIG_BYTES} bytes)`);
  }
}

export class ImageStore {
  readonly dir: string;
  private readonly tagsFile: string;
  private readonly lock = new Mutex();
  private tags: Tags = {};
  private readonly records = new Map<string, ImageRecord>();
  /** Told the IDs whose record or tags changed (summary caches drop them). */
  onChange: (ids: string[]) => void = () => undefined;

  constructor(root: string) {
    this.dir = path.join(root, 'images');
    this.tagsFile = path.join(this.dir, 'tags.json');
  }

  async open(): Promise<void> {
    await ensureDir(this.dir);
    this.tags = (await readJson<Tags>(this.tagsFile)) ?? {};
    for (const name of await fs.promises.readdir(this.dir)) {
      const m = /^([a-f0-9]{64})\.json$/.exec(name);
      if (!m) continue;
      const rec = await readJson<ImageRecord>(path.join(this.dir, name));
      if (rec) this.records.set(rec.id, rec);
    }
    // A tag whose record is gone (crash between writes) is dropped rather than left dangling.
    const dangling = Object.keys(this.tags).filter((t) => !this.records.has(this.tags[t]));
    if (dangling.length) {
      for (const t of dangling) delete this.tags[t];
      await writeJsonAtomic(this.tagsFile, this.tags);
    }
  }

  list(): ImageRecord[] {
    return [...this.records.values()];
  }

  get(id: string): ImageRecord | undefined {
    return this.records.get(id);
  }

  /** Bytes a layer occupies on disk, as recorded when some image unpacked it. */
  layerSize(chainId: string): number | undefined {
    for (const r of this.records.values()) {
      const i = r.chainIds.indexOf(chainId);
      if (i >= 0 && r.layerSizes) return r.layerSizes[i];
    }
    return undefined;
  }

  /** Fully qualified tags pointing at an image, e.g. `docker.io/library/busybox:latest`. */
  tagsOf(id: string): string[] {
    return Object.keys(this.tags)
      .filter((t) => this.tags[t] === id)
      .sort();
  }

  /** The image a tag reference points to, if any. */
  byTag(ref: ImageRef): ImageRecord | undefined {
    const id = this.tags[formatReference({ ...ref, digest: undefined })];
    return id ? this.records.get(id) : undefined;
  }

  /**
   * Find an image the way Docker does: full or short ID (`sha256:` optional), `name:tag`,
   * `name@digest`. Throws NotFoundError naming what was asked.
   */
  resolve(name: string): ImageRecord {
    const found = this.find(name);
    if (!found) throw new NotFoundError(`No such image: ${name}`);
    return found;
  }

  find(name: string): ImageRecord | undefined {
    const idLike = /^(?:sha256:)?([a-f0-9]{4,64})$/.exec(name);
    // A full ID is never a name (parseReference refuses 64 hex), so it is looked up directly.
    if (idLike && idLike[1].length === 64) return this.records.get(`sha256:${idLike[1]}`);
    let ref: ImageRef | undefined;
    try {
      ref = parseReference(name);
    } catch {
      ref = undefined;
    }
    // As in Docker, a tag wins over an ID prefix: `cafe` names the image tagged cafe:latest even
    // when some image ID starts with cafe.
    if (ref && !ref.digest) {
      const tagged = this.byTag(ref);
      if (tagged) return tagged;
    }
    if (idLike) {
      const prefix = `sha256:${idLike[1]}`;
      const matches = this.list().filter((r) => r.id.startsWith(prefix));
      if (matches.length === 1) return matches[0];
      if (matches.length > 1) throw new ConflictError(`image ID prefix ${name} is ambiguous`);
    }
    if (ref?.digest) {
      const repo = repositoryName(ref);
      const want = `${repo}@${ref.digest}`;
      return this.list().find((r) => r.repoDigests.includes(want) || (r.manifestDigest === ref.digest && r.repoDigests.some((d) => d.startsWith(repo + '@'))));
    }
    return undefined;
  }

  /** Record an image and optionally tag it; the record is written before the tag. */
  async add(record: ImageRecord, tag?: ImageRef): Promise<void> {
    digestHex(record.id);
    await this.lock.run(async () => {
      const prior = this.records.get(record.id);
      const merged: ImageRecord = prior ? { ...record, repoDigests: [...new Set([...prior.repoDigests, ...record.repoDigests])], size: record.size || prior.size } : record;
      await writeJsonAtomic(this.recordPath(record.id), merged);
      this.records.set(record.id, merged);
      this.onChange([record.id]);
      if (tag) await this.setTag(tag, record.id);
    });
  }

  async update(id: string, change: (r: ImageRecord) => void): Promise<void> {
    await this.lock.run(async () => {
      const rec = this.records.get(id);
      if (!rec) return;
      change(rec);
      await writeJsonAtomic(this.recordPath(id), rec);
      this.onChange([id]);
    });
  }

  async tag(id: string, ref: ImageRef): Promise<void> {
    await this.lock.run(() => this.setTag(ref, id));
  }

  private async setTag(ref: ImageRef, id: string): Promise<void> {
    if (!this.records.has(id)) throw new NotFoundError(`No such image: ${id}`);
    const key = formatReference({ ...ref, digest: undefined });
    const previous = this.tags[key];
    const next = { ...this.tags, [key]: id };
    await writeJsonAtomic(this.tagsFile, next);
    this.tags = next;
    this.onChange(previous && previous !== id ? [id, previous] : [id]);
  }

  /** Remove one tag; returns whether it existed. */
  async untag(ref: ImageRef): Promise<boolean> {
    return this.lock.run(async () => {
      const key = formatReference({ ...ref, digest: undefined });
      if (!(key in this.tags)) return false;
      const next = { ...this.tags };
      const id = next[key];
      delete next[key];
      await writeJsonAtomic(this.tagsFile, next);
      this.tags = next;
      this.onChange([id]);
      return true;
    });
  }

  /** Drop an image record and every tag and repo digest pointing at it. */
  async delete(id: string): Promise<void> {
    await this.lock.run(async () => {
      const next = Object.fromEntries(Object.entries(this.tags).filter(([, v]) => v !== id));
      await writeJsonAtomic(this.tagsFile, next);
      this.tags = next;
      await fs.promises.rm(this.recordPath(id), { force: true });
      this.records.delete(id);
      this.onChange([id]);
    });
  }

  private recordPath(id: string): string {
    return path.join(this.dir, `${digestHex(id)}.json`);
  }
}

/** Docker's display names for an image's tags: `busybox:latest`. */
export function familiarTags(tags: string[]): string[] {
  return tags.map((t) => familiarReference(parseReference(t)));
}

/** Chain IDs per the OCI image spec: chain[0] = diff[0]; chain[n] = sha256(chain[n-1] + " " + diff[n]). */
export function chainIds(diffIds: string[]): string[] {
  const out: string[] = [];
  for (const d of diffIds) {
    const prev = out[out.length - 1];
    out.push(prev ? 'sha256:' + createHash('sha256').update(`${prev} ${d}`).digest('hex') : d);
  }
  return out;
}
