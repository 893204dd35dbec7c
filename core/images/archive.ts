/**
 * `save` and `load`: image archives.
 *
 * save writes the format Docker 25+ writes, which is two formats in one tar:
 *   - an OCI image layout: `oci-layout`, `index.json` (one entry per tag, annotated with
 *     `org.opencontainers.image.ref.name` = the tag and `io.containerd.image.name` = the full name),
 *     `blobs/sha256/<hex>`;
 *   - a `docker load` archive: `manifest.json` ([{Config, RepoTags, Layers}], paths into blobs/)
 *     and `repositories`.
 * Blobs are the stored ones (layers stay compressed, manifests keep their digests), streamed from
 * the content store one after another, never buffered (archive-save.ts).
 *
 * load reads that format, older `docker save` archives (`<id>/layer.tar`, `<id>.json`,
 * manifest.json), skopeo's docker-archive, plain OCI layouts (names from annotations), each plain
 * or gzip-compressed. The archive is spooled to a private directory first (docker archives list
 * manifest.json last), every file hashed on the way; every digest is checked (blob paths, configs,
 * uncompressed layers against the config's diff IDs) before anything is stored; the layers are
 * unpacked, and the image recorded and tagged last. A failed load leaves no image and no new blob.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import { type ContentStore, sha256Digest } from '../content/store';
import { type LoadPlan, planLoad } from './archive-plan';
import { saveImages } from './archive-save';
import { spool } from './archive-spool';
import { decompressIfNeeded } from './import';
import type { LayerUnpacker } from './pull';
import { familiarReference } from './reference';
import { recordImage } from './record-image';
import type { ImageService } from './service';

export interface ArchiveDeps {
  content: ContentStore;
  images: ImageService;
  unpacker: () => LayerUnpacker | undefined;
}

export interface LoadedImage {
  id: string;
  /** Familiar names of the tags given to it (`busybox:latest`). */
  tags: string[];
}

export class ImageArchiver {
  constructor(private readonly deps: ArchiveDeps) {}

  /** Resolve every name first (a missing image is a 404 before any byte is sent), then stream the archive. */
  save(names: string[]): Promise<Readable> {
    return saveImages(this.deps, names);
  }

  async load(body: Readable): Promise<LoadedImage[]> {
    const workDir = path.join(this.deps.content.ingestDir, `load-${randomBytes(8).toString('hex')}`);
    await fs.promises.mkdir(workDir, { mode: 0o700 });
    try {
      const archive = await spool(await decompressIfNeeded(body, 'the archive'), workDir);
      const plans = await planLoad(archive);
      return await this.commitPlans(plans);
    } finally {
      await fs.promises.rm(workDir, { recursive: true, force: true });
    }
  }

  private async commitPlans(plans: LoadPlan[]): Promise<LoadedImage[]> {
    const content = this.deps.content;
    const added: string[] = [];
    const loaded: LoadedImage[] = [];
    try {
      for (const plan of plans) {
        for (const layer of plan.layers) {
          if (await content.has(layer.desc.digest)) continue;
          await content.ingest(layer.desc, async () => fs.createReadStream(layer.file.file));
          added.push(layer.desc.digest);
        }
        for (const bytes of [plan.configBytes, plan.manifest?.bytes]) {
          if (!bytes) continue;
          const d = sha256Digest(bytes);
          if (!(await content.has(d))) added.push(d);
        }
        const rec = await recordImage(this.deps, {
          config: plan.config,
          configBytes: plan.configBytes,
          layers: plan.layers.map((l) => l.desc),
          format: 'oci',
          manifest: plan.manifest,
          tags: plan.tags,
        });
        if (!plan.manifest) added.push(rec.manifestDigest!);
        loaded.push({ id: rec.id, tags: plan.tags.map((t) => familiarReference(t)) });
      }
    } catch (err) {
      // Blobs this load brought that no image uses (a layer that failed its diff ID check) go again.
      const used = new Set(this.deps.images.store.list().flatMap((r) => [r.configDigest, r.manifestDigest, ...r.layers.map((l) => l.digest)]));
      for (const d of added) if (d && !used.has(d)) await content.delete(d).catch(() => undefined);
      throw err;
    }
    return loaded;
  }
}
