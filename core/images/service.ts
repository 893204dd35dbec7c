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

/** Something outside the image store that holds images (containers do, once they exist). */
export type ImageUsers = (imageId: string) => string[];

export class ImageService {
  /** Layers a removed image may have released; called with the chain IDs no image uses any more. */
  onLayersReleased: (chainIds: string[]) => Promise<void> = async () => undefined;
  imageUsers: ImageUsers = () => [];
  /** Image events for /events: pull, tag, untag, delete. */
  onEvent: (action: string, id: string, name?: string) => void = () => undefined;

  constructor(private readonly content: ContentStore, readonly store: ImageStore, private readonly puller: Puller) {}

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

  /** GET /images/json */
  async list(opts: { all?: boolean; reference?: string[]; danglingOnly?: boolean } = {}) {
    const out = [];
    const parents = new Set(this.store.list().map((r) => r.parent).filter(Boolean));
    for (const rec of this.store.list()) {
      const tags = familiarTags(this.store.tagsOf(rec.id));
      // Untagged build steps under another image are intermediate: shown only with -a, as in Docker.
      if (!opts.all && !tags.length && parents.has(rec.id)) continue;
      if (opts.danglingOnly && tags.length) continue;
      if (opts.reference?.length && !tags.some((t) => opts.reference!.some((r) => matchReference(t, r)))) continue;
      const cfg = await this.config(rec);
      out.push({
        Id: rec.id,
        ParentId: rec.parent ?? '',
        RepoTags: tags,
        RepoDigests: rec.repoDigests.map((d) => familiarReference(parseReference(d))),
        Created: Math.floor(Date.parse(rec.created ?? rec.recorded) / 1000) || 0,
        Size: rec.size,
        SharedSize: -1,
        VirtualSize: rec.size,
        Labels: cfg.config?.Labels ?? {},
        Containers: -1,
      });
    }
    return out.sort((a, b) => b.Created - a.Created);
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
  async remove(name: string, opts: { force?: boolean } = {}): Promise<RemoveResult[]> {
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
    return results;
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
function matchReference(tag: string, pattern: string): boolean {
  const full = pattern.includes(':') ? pattern : `${pattern}:*`;
  const re = new RegExp('^' + full.split('*').map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('[^/]*') + '$');
  return re.test(tag);
}
