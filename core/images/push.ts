/**
 * `push`: send an image's layers, config and manifest to the registry that claims its name.
 * Each layer is checked first (HEAD: "Layer already exists"), then mounted from another repository
 * of the same registry that holds it (known from repo digests of local images that share the
 * layer: "Mounted from REPO"), and only then uploaded. The manifest goes last, under the tag: the
 * stored bytes, so a pulled image keeps its digest. Progress follows `docker push`.
 */
import { Transform, type Readable } from 'node:stream';
import type { Descriptor, ImageRef, ProgressSink } from '../contracts/types';
import { InvalidArgumentError, NotFoundError, NotImplementedError } from '../contracts/errors';
import type { RegistryCredentials } from '../contracts/registry';
import type { ContentStore } from '../content/store';
import type { ImageService } from './service';
import type { ImageRecord } from './store';
import { runLimited, shortId } from './pull';
import { buildManifest, formatOf } from './manifest-build';
import { formatReference, parseReference, repositoryName } from './reference';

/** Docker pushes 5 layers at once; a loopback registry gains little from more. */
const PUSH_CONCURRENCY = 3;

export interface PushOptions {
  /** The tag to push; absent: every tag of the repository (Docker's API without `tag`). */
  tag?: string;
  credentials?: RegistryCredentials;
  progress?: ProgressSink;
  signal?: AbortSignal;
}

export interface PushedTag {
  tag: string;
  digest: string;
  size: number;
}

export class ImagePusher {
  constructor(private readonly deps: { content: ContentStore; images: ImageService }) {}

  async push(name: string, opts: PushOptions = {}): Promise<PushedTag[]> {
    const progress = opts.progress ?? (() => undefined);
    const parsed = parseReference(name, { defaultTag: false });
    if (parsed.digest) throw new InvalidArgumentError(`cannot push a digest reference: ${name}`);
    const tag = opts.tag || parsed.tag;
    const refs: ImageRef[] = tag
      ? [{ ...parsed, tag }]
      : this.deps.images.store
          .list()
          .flatMap((r) => this.deps.images.store.tagsOf(r.id))
          .map((t) => parseReference(t))
          .filter((r) => r.domain === parsed.domain && r.path === parsed.path)
          .sort((a, b) => (a.tag ?? '').localeCompare(b.tag ?? ''));
    if (!refs.length) throw new NotFoundError(`An image does not exist locally with the tag: ${name}`);
    const out: PushedTag[] = [];
    for (const ref of refs) {
      const rec = this.deps.images.store.byTag(ref);
      if (!rec) throw new NotFoundError(`An image does not exist locally with the tag: ${formatReference(ref)}`);
      out.push(await this.pushOne(ref, rec, opts, progress));
    }
    return out;
  }

  private async pushOne(ref: ImageRef, rec: ImageRecord, opts: PushOptions, progress: ProgressSink): Promise<PushedTag> {
    const registry = this.deps.images.registryFor(ref);
    if (!registry.hasBlob || !registry.putBlob || !registry.putManifest) throw new NotImplementedError(`the registry plugin for ${ref.domain} cannot push`);
    const reqOpts = { credentials: opts.credentials, signal: opts.signal };
    progress({ status: `The push refers to repository [${repositoryName(ref)}]` });
    const manifest = await this.manifestOf(rec);

    // Docker lists layers top first; the ids are the diff IDs.
    const ids = rec.layers.map((_, i) => shortId(rec.diffIds[i] ?? rec.layers[i].digest));
    for (let i = rec.layers.length - 1; i >= 0; i--) progress({ id: ids[i], status: 'Preparing' });
    await runLimited(
      manifest.layers.map((layer, i) => async () => {
        if (!(await this.deps.content.has(layer.digest))) {
          throw new NotFoundError(`layer ${layer.digest} of ${formatReference(ref)} is missing from the content store (berth system check)`);
        }
        if (await registry.hasBlob!(ref, layer, reqOpts)) {
          progress({ id: ids[i], status: 'Layer already exists' });
          return;
        }
        const mountFrom = this.mountCandidates(ref, layer.digest);
        const result = await registry.putBlob!(ref, layer, () => this.counted(layer, (n) => progress({ id: ids[i], status: 'Pushing', current: n, total: layer.size })), { ...reqOpts, mountFrom });
        if (result === 'mounted') progress({ id: ids[i], status: `Mounted from ${mountFrom[0]}` });
        else if (result === 'exists') progress({ id: ids[i], status: 'Layer already exists' });
        else progress({ id: ids[i], status: 'Pushed' });
      }),
      PUSH_CONCURRENCY,
      opts.signal,
    );

    const config: Descriptor = manifest.config;
    if (!(await registry.hasBlob(ref, config, reqOpts))) {
      await registry.putBlob(ref, config, () => this.deps.content.open(config.digest), { ...reqOpts, mountFrom: this.mountCandidates(ref, config.digest) });
    }
    await registry.putManifest(ref, ref.tag!, { bytes: manifest.bytes, mediaType: manifest.mediaType }, reqOpts);
    const digest = manifest.digest;
    progress({ status: `${ref.tag}: digest: ${digest} size: ${manifest.bytes.length}` });
    // As in Docker, the pushed manifest becomes a repo digest of the image.
    const repoDigest = `${repositoryName(ref)}@${digest}`;
    if (!rec.repoDigests.includes(repoDigest)) {
      await this.deps.images.store.update(rec.id, (r) => {
        if (!r.repoDigests.includes(repoDigest)) r.repoDigests.push(repoDigest);
      });
    }
    return { tag: ref.tag!, digest, size: manifest.bytes.length };
  }

  /** The manifest the image was pulled or built as; for a record without one, a fresh one. */
  private async manifestOf(rec: ImageRecord): Promise<{ bytes: Buffer; mediaType: string; digest: string; config: Descriptor; layers: Descriptor[] }> {
    if (rec.manifestDigest && (await this.deps.content.has(rec.manifestDigest))) {
      const bytes = await this.deps.content.read(rec.manifestDigest);
      const doc = JSON.parse(bytes.toString('utf8'));
      return { bytes, mediaType: doc.mediaType ?? rec.manifestMediaType, digest: rec.manifestDigest, config: doc.config, layers: doc.layers };
    }
    const stat = await this.deps.content.stat(rec.configDigest);
    if (!stat) throw new NotFoundError(`config ${rec.configDigest} of image ${rec.id} is missing from the content store`);
    const built = buildManifest(stat, rec.layers, formatOf(rec));
    const digest = await this.deps.content.put(built.bytes);
    return { ...built, digest, config: JSON.parse(built.bytes.toString('utf8')).config };
  }

  /** Other repositories of the same registry whose images hold this blob (cross-repo mount). */
  private mountCandidates(ref: ImageRef, digest: string): string[] {
    const repos = new Set<string>();
    for (const rec of this.deps.images.store.list()) {
      if (rec.configDigest !== digest && !rec.layers.some((l) => l.digest === digest)) continue;
      for (const rd of rec.repoDigests) {
        const other = parseReference(rd);
        if (other.domain === ref.domain && other.path !== ref.path) repos.add(other.path);
      }
    }
    return [...repos];
  }

  /** The blob's bytes with a byte count reported as they are read (throttled). */
  private counted(layer: Descriptor, onProgress: (n: number) => void): Readable {
    let sent = 0;
    let last = 0;
    const counter = new Transform({
      transform(chunk: Buffer, _e, cb) {
        sent += chunk.length;
        const now = Date.now();
        if (now - last > 100 || sent === layer.size) {
          last = now;
          onProgress(sent);
        }
        cb(null, chunk);
      },
    });
    const blob = this.deps.content.open(layer.digest);
    blob.on('error', (err) => counter.destroy(err));
    return blob.pipe(counter);
  }
}
