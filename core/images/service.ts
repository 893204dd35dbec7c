/**
 * What the API does with images: list, inspect, history, tag, remove, pull, and the store check.
 * Shapes follow the Docker Engine API so docker clients read them unchanged.
 */
import type { ImageConfig, ImageRef } from '../contracts/types';
import { ConflictError, InvalidArgumentError } from '../contracts/errors';
import type { ContentStore } from '../content/store';
import type { ImageRecord, ImageStore } from './store';
import { familiarTags } from './store';
import { type Puller, type PullOptions, parseConfig } from './pull';
import { familiarReference, parseReference, repositoryName } from './reference';
import { imageFilter } from './filters';

export interface RemoveResult {
  Untagged?: string;
  Deleted?: string;
}

export interface CheckReport {
  blobs: number;
  corrupt: string[];
  orphaned: string[];
  missing: string[];
}

/** One row of GET /images/json, as Docker shapes it. Cached rows are frozen: hand them out as they are. */
export interface ImageSummary {
  Id: string;
  ParentId: string;
  RepoTags: readonly string[];
  RepoDigests: readonly string[];
  Created: number;
  Size: number;
  SharedSize: number;
  VirtualSize: number;
  Labels: Readonly<Record<string, string>>;
  Containers: number;
}

/** Something outside the image store that holds images (containers do, once they exist). */
export type ImageUsers = (imageId: string) => string[];

export class ImageService {
  /** Layers a removed image may have released; called with the chain IDs no image uses any more. */
  onLayersReleased: (chainIds: string[]) => Promise<void> = async () => undefined;
  imageUsers: ImageUsers = () => [];
  /** Image events for /events: pull, tag, untag, delete. */
  onEvent: (action: string, id: string, name?: string) => void = () => undefined;

  /** Listing rows by image ID, so a listing reads each config once, not every time. */
  private readonly summaries = new Map<string, Readonly<ImageSummary>>();
  /** Counts store changes, so a row built across one is not cached. */
  private storeChanges = 0;

  constructor(
    private readonly content: ContentStore,
    readonly store: ImageStore,
    private readonly puller: Puller,
  ) {
    store.onChange = (ids) => {
      this.storeChanges++;
      for (const id of ids) this.summaries.delete(id);
    };
  }

  registryFor(ref: ImageRef) {
    return this.puller.registryFor(ref);
  }

  async pull(name: string, opts: PullOptions): Promise<ImageRecord> {
    const ref = parseReference(name);
    const rec = await this.puller.pull(ref, opts);
    this.onEvent('pull', familiarReference(ref), familiarReference(ref));
    return rec;
  }

  async config(rec: ImageRecord): Promise<ImageConfig> {
    return parseConfig(await this.content.read(rec.configDigest), rec.id);
  }

  /** GET /images/json, with dockerd's filters (core/images/filters.ts); rows come from the summary cache. */
  async list(opts: { all?: boolean; filters?: Record<string, string[]> } = {}): Promise<Readonly<ImageSummary>[]> {
    const out: Readonly<ImageSummary>[] = [];
    const records = this.store.list();
    const parents = new Set(records.map((r) => r.parent).filter(Boolean));
    const createdOf = (r: ImageRecord) => Math.floor(Date.parse(r.created ?? r.recorded) / 1000) || 0;
    const verdict = imageFilter(opts.filters ?? {}, (ref) => createdOf(this.store.resolve(ref)), !!opts.all);
    for (const rec of records) {
      const row = await this.summary(rec);
      const v = verdict({ id: rec.id, created: row.Created, tags: [...row.RepoTags], repoDigests: [...row.RepoDigests], labels: row.Labels, hasChildren: parents.has(rec.id) });
      if (!v.listed) continue;
      out.push(v.tags.length === row.RepoTags.length ? row : Object.freeze({ ...row, RepoTags: Object.freeze(v.tags) }));
    }
    return out.sort((a, b) => b.Created - a.Created);
  }

  private async summary(rec: ImageRecord): Promise<Readonly<ImageSummary>> {
    const cached = this.summaries.get(rec.id);
    if (cached) return cached;
    const changes = this.storeChanges;
    const cfg = await this.config(rec);
    const row: ImageSummary = {
      Id: rec.id,
      ParentId: rec.parent ?? '',
      RepoTags: Object.freeze(familiarTags(this.store.tagsOf(rec.id))),
      RepoDigests: Object.freeze(rec.repoDigests.map((d) => familiarReference(parseReference(d)))),
      Created: Math.floor(Date.parse(rec.created ?? rec.recorded) / 1000) || 0,
      Size: rec.size,
      SharedSize: -1,
      VirtualSize: rec.size,
      Labels: Object.freeze({ ...(cfg.config?.Labels ?? {}) }),
      Containers: -1,
    };
    Object.freeze(row);
    // A tag or record change while the config was read may have made the row stale already.
    if (changes === this.storeChanges) this.summaries.set(rec.id, row);
    return row;
  }

  /** The image `ref` names and every image built on it (build parents); [] when none matches, as dockerd's ancestor filter takes it. */
  imageAndDescendants(ref: string): string[] {
    let root: ImageRecord | undefined;
    try {
      root = this.store.find(ref);
    } catch {
      return []; // not a valid reference: names no image
    }
    if (!root) return [];
    const records = this.store.list();
    const ids = [root.id];
    for (let i = 0; i < ids.length; i++) for (const r of records) if (r.parent === ids[i] && !ids.includes(r.id)) ids.push(r.id);
    return ids;
  }

  /** GET /images/{name}/json */
  async inspect(name: string) {
    const rec = this.store.resolve(name);
    const cfg = await this.config(rec);
    return {
      Id: rec.id,
      RepoTags: familiarTags(this.store.tagsOf(rec.id)),
      RepoDigests: rec.repoDigests.map((d) => familiarReference(parseReference(d))),
      Parent: rec.parent ?? '',
      Comment: '',
      Created: cfg.created ?? '',
      Container: '',
      ContainerConfig: {},
      DockerVersion: '',
      Author: cfg.author ?? '',
      // dockerd's Go struct always has OnBuild (null when the image has no triggers).
      Config: { ...(cfg.config ?? {}), OnBuild: cfg.config?.OnBuild ?? null },
      Architecture: cfg.architecture,
      Variant: cfg.variant,
      Os: cfg.os,
      Size: rec.size,
      VirtualSize: rec.size,
      GraphDriver: { Name: '', Data: null },
      RootFS: { Type: 'layers', Layers: rec.diffIds },
      Metadata: { LastTagTime: rec.recorded },
      Descriptor: rec.manifestDigest ? { mediaType: rec.manifestMediaType, digest: rec.manifestDigest } : undefined,
    };
  }

  /** GET /images/{name}/history: newest first, like docker history. */
  async history(name: string) {
    const rec = this.store.resolve(name);
    const cfg = await this.config(rec);
    const history = cfg.history?.length ? cfg.history : rec.diffIds.map(() => ({}) as NonNullable<ImageConfig['history']>[number]);
    let layer = 0;
    const rows = history.map((h) => {
      const empty = !!h.empty_layer;
      // Docker shows each layer's size on disk (unpacked), not its compressed blob size.
      const size = empty ? 0 : (rec.layerSizes?.[layer] ?? rec.layers[layer]?.size ?? 0);
      if (!empty) layer++;
      return {
        Id: '<missing>',
        Created: Math.floor(Date.parse(h.created ?? cfg.created ?? '') / 1000) || 0,
        CreatedBy: h.created_by ?? '',
        Tags: null as string[] | null,
        Size: size,
        Comment: h.comment ?? '',
      };
    });
    rows.reverse();
    if (rows.length) {
      rows[0].Id = rec.id;
      rows[0].Tags = familiarTags(this.store.tagsOf(rec.id));
    }
    return rows;
  }

  /** POST /images/{name}/tag */
  async tag(name: string, repo: string, tag?: string): Promise<void> {
    const rec = this.store.resolve(name);
    if (!repo) throw new InvalidArgumentError('repository name must have at least one component');
    const ref = parseReference(tag ? `${repo}:${tag}` : repo);
    if (ref.digest) throw new InvalidArgumentError(`refusing to create a tag with a digest reference: ${repo}`);
    await this.store.tag(rec.id, ref);
    this.onEvent('tag', rec.id, familiarReference(ref));
  }

  /**
   * DELETE /images/{name}: by tag, untag (and delete when it was the last tag); by ID, delete —
   * refused with 409 when the image has several tags (unless force) or a container uses it.
   */
  async remove(name: string, opts: { force?: boolean; noPrune?: boolean } = {}): Promise<RemoveResult[]> {
    const rec = this.store.resolve(name);
    const tags = this.store.tagsOf(rec.id);
    const byId = /^(?:sha256:)?[a-f0-9]{4,64}$/.test(name) && !tags.some((t) => t === name);
    const results: RemoveResult[] = [];
    const users = this.imageUsers(rec.id);
    if (!byId) {
      const ref = parseReference(name);
      if (ref.digest) {
        // As in Docker, removing one digest reference keeps an image other references still name.
        const key = `${repositoryName(ref)}@${ref.digest}`;
        const others = rec.repoDigests.filter((d) => d !== key);
        if (others.length < rec.repoDigests.length && (tags.length || others.length)) {
          await this.store.update(rec.id, (r) => {
            r.repoDigests = others;
          });
          const digest = ref.digest;
          const stillUsed = this.store.list().some((r) => r.manifestDigest === digest || r.repoDigests.some((d) => d.endsWith('@' + digest)));
          if (!stillUsed) await this.content.delete(digest); // an index blob kept only for this reference
          results.push({ Untagged: familiarReference(ref) });
          return results;
        }
      } else {
        if (tags.length === 1 && users.length && !opts.force) {
          throw new ConflictError(`conflict: unable to remove repository reference "${name}" (must force) - container ${users[0].slice(0, 12)} is using its referenced image ${short(rec.id)}`);
        }
        await this.store.untag(ref);
        results.push({ Untagged: familiarReference(ref) });
        this.onEvent('untag', rec.id, familiarReference(ref));
        if (tags.length > 1) return results;
      }
    } else if (tags.length > 1 && !opts.force) {
      throw new ConflictError(`conflict: unable to delete ${short(rec.id)} (must be forced) - image is referenced in multiple repositories`);
    }
    if (users.length && !opts.force) {
      throw new ConflictError(`conflict: unable to delete ${short(rec.id)} (cannot be forced) - image is being used by container ${users[0].slice(0, 12)}`);
    }
    if (users.length) return results; // forced untag of an image in use keeps the image, as Docker does
    for (const t of familiarTags(this.store.tagsOf(rec.id))) results.push({ Untagged: t });
    for (const d of rec.repoDigests) results.push({ Untagged: familiarReference(parseReference(d)) });
    await this.store.delete(rec.id);
    await this.collect(rec);
    results.push({ Deleted: rec.id });
    this.onEvent('delete', rec.id);
    if (!opts.noPrune) await this.pruneParents(rec, results);
    return results;
  }

  /**
   * After a delete, docker deletes the untagged parents (build steps) the image leaves unused, up
   * the chain, stopping quietly at one that is named, used by a container or has other children.
   */
  private async pruneParents(deleted: ImageRecord, results: RemoveResult[]): Promise<void> {
    let parent = deleted.parent ? this.store.get(deleted.parent) : undefined;
    while (parent) {
      const id = parent.id;
      const kept = this.store.tagsOf(id).length > 0 || parent.repoDigests.length > 0 || this.imageUsers(id).length > 0 || this.store.list().some((r) => r.parent === id);
      if (kept) return;
      await this.store.delete(id);
      await this.collect(parent);
      results.push({ Deleted: id });
      this.onEvent('delete', id);
      parent = parent.parent ? this.store.get(parent.parent) : undefined;
    }
  }

  /** Drop blobs and layers of a removed image that no remaining image uses. */
  private async collect(removed: ImageRecord): Promise<void> {
    const remaining = this.store.list();
    const blobsOf = (r: ImageRecord) => [r.configDigest, r.manifestDigest, ...r.layers.map((l) => l.digest), ...r.repoDigests.map((d) => d.split('@')[1])];
    const usedBlobs = new Set(remaining.flatMap(blobsOf));
    const usedChains = new Set(remaining.flatMap((r) => r.chainIds));
    for (const d of blobsOf(removed)) if (d && !usedBlobs.has(d)) await this.content.delete(d);
    const released = removed.chainIds.filter((c) => !usedChains.has(c));
    if (released.length) await this.onLayersReleased(released.reverse());
  }

  /** `berth system check`: re-hash every blob; report corrupt, orphaned and missing ones. */
  async check(): Promise<CheckReport> {
    const referenced = new Set<string>();
    const missing: string[] = [];
    for (const rec of this.store.list()) {
      for (const d of [rec.configDigest, rec.manifestDigest, ...rec.layers.map((l) => l.digest)]) {
        if (!d) continue;
        referenced.add(d);
        if (!(await this.content.has(d))) missing.push(`${d} (image ${short(rec.id)})`);
      }
    }
    const report: CheckReport = { blobs: 0, corrupt: [], orphaned: [], missing };
    for await (const blob of this.content.list()) {
      report.blobs++;
      if ((await this.content.rehash(blob.digest)) !== blob.digest) report.corrupt.push(blob.digest);
      else if (!referenced.has(blob.digest) && !(await this.isIndexOfImage(blob.digest))) report.orphaned.push(blob.digest);
    }
    return report;
  }

  /** Index blobs are kept for repo digests but not listed in records; they are not orphans. */
  private async isIndexOfImage(digest: string): Promise<boolean> {
    return this.store.list().some((r) => r.repoDigests.some((d) => d.endsWith('@' + digest)));
  }

  /** Remove orphaned blobs (what `system check` reports as orphaned). */
  async removeOrphans(): Promise<string[]> {
    const { orphaned } = await this.check();
    for (const d of orphaned) await this.content.delete(d);
    return orphaned;
  }
}

const short = (id: string) => id.replace(/^sha256:/, '').slice(0, 12);

/** Docker's reference filter: globs such as `busybox`, `busybox:*` on the familiar name. */
