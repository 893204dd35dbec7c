/**
 * `save`: the format Docker 25+ writes, which is two formats in one tar (see archive.ts). Blobs
 * are the stored ones (layers stay compressed, manifests keep their digests), streamed from the
 * content store one after another, never buffered.
 */
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as tar from 'tar-stream';
import type { Descriptor, ImageRef } from '../contracts/types';
import { MediaTypes } from '../contracts/types';
import { InvalidArgumentError, NotFoundError } from '../contracts/errors';
import { type ContentStore, sha256Digest } from '../content/store';
import { CONTAINERD_NAME, REF_NAME, blobPath } from './archive-layout';
import { buildManifest, formatOf } from './manifest-build';
import { parseManifest } from './manifest';
import { familiarName, familiarReference, formatReference, parseReference } from './reference';
import type { ImageService } from './service';
import type { ImageRecord, ImageStore } from './store';

export interface SaveDeps {
  content: ContentStore;
  images: ImageService;
}

interface SaveItem {
  rec: ImageRecord;
  refs: ImageRef[];
  manifest: { bytes: Buffer; mediaType: string; digest: string };
  config: Descriptor;
  layers: Descriptor[];
}

/**
 * Resolve every name first (a missing image is a 404 before any byte is sent), then return the
 * archive as a stream.
 */
export async function saveImages(deps: SaveDeps, names: string[]): Promise<Readable> {
  if (!names.length) throw new InvalidArgumentError('save needs at least one image name');
  const items = new Map<string, SaveItem>();
  for (const name of names) {
    const { rec, refs } = resolveForSave(deps.images.store, name);
    const item = items.get(rec.id) ?? { rec, refs: [], ...(await partsOf(deps.content, rec)) };
    for (const r of refs) if (!item.refs.some((x) => formatReference(x) === formatReference(r))) item.refs.push(r);
    items.set(rec.id, item);
  }
  for (const item of items.values()) {
    for (const d of [item.config, ...item.layers]) {
      if (!(await deps.content.has(d.digest))) throw new NotFoundError(`blob ${d.digest} of image ${item.rec.id} is missing from the content store`);
    }
  }
  return writeArchive(deps.content, [...items.values()]);
}

/** `busybox` saves every tag of the repository; `busybox:1` that tag; an ID the image untagged. */
function resolveForSave(store: ImageStore, name: string): { rec: ImageRecord; refs: ImageRef[] } {
  let ref: ImageRef | undefined;
  try {
    ref = parseReference(name, { defaultTag: false });
  } catch {
    ref = undefined;
  }
  if (ref && !ref.digest && !ref.tag) {
    const tagged = store
      .list()
      .flatMap((r) => store.tagsOf(r.id).map((t) => ({ rec: r, ref: parseReference(t) })))
      .filter((x) => x.ref.domain === ref!.domain && x.ref.path === ref!.path);
    // Several images of one repository: save the one `name` resolves to, with all its tags there.
    if (tagged.length) {
      const rec = store.find(name) ?? tagged[0].rec;
      return { rec, refs: tagged.filter((x) => x.rec.id === rec.id).map((x) => x.ref) };
    }
  }
  const rec = store.resolve(name);
  if (ref?.tag && store.byTag(ref)?.id === rec.id) return { rec, refs: [ref] };
  return { rec, refs: [] };
}

async function partsOf(content: ContentStore, rec: ImageRecord): Promise<Omit<SaveItem, 'rec' | 'refs'>> {
  const configStat = await content.stat(rec.configDigest);
  if (!configStat) throw new NotFoundError(`config ${rec.configDigest} of image ${rec.id} is missing from the content store`);
  if (rec.manifestDigest && (await content.has(rec.manifestDigest))) {
    const bytes = await content.read(rec.manifestDigest);
    const m = parseManifest(bytes, rec.manifestMediaType ?? MediaTypes.ociManifest, rec.id);
    if (m.kind === 'manifest') return { manifest: { bytes, mediaType: m.mediaType, digest: rec.manifestDigest }, config: m.config, layers: m.layers };
  }
  const built = buildManifest(configStat, rec.layers, formatOf(rec));
  return { manifest: { bytes: built.bytes, mediaType: built.mediaType, digest: sha256Digest(built.bytes) }, config: JSON.parse(built.bytes.toString('utf8')).config, layers: built.layers };
}

function writeArchive(content: ContentStore, items: SaveItem[]): Readable {
  const pack = tar.pack();
  const out = new PassThrough();
  const mtime = new Date(0);
  const run = async () => {
    await addBuffer(pack, { name: 'blobs', type: 'directory', mode: 0o755, mtime });
    await addBuffer(pack, { name: 'blobs/sha256', type: 'directory', mode: 0o755, mtime });
    const written = new Set<string>();
    for (const item of items) {
      // Layers first, then config and manifest: a reader streaming the tar meets what a manifest names before it.
      for (const d of [...item.layers, item.config]) {
        if (written.has(d.digest)) continue;
        written.add(d.digest);
        const size = (await content.stat(d.digest))!.size;
        const sink = pack.entry({ name: blobPath(d.digest), type: 'file', size, mode: 0o444, mtime });
        await pipeline(content.open(d.digest), sink as unknown as NodeJS.WritableStream);
      }
      if (!written.has(item.manifest.digest)) {
        written.add(item.manifest.digest);
        await addBuffer(pack, { name: blobPath(item.manifest.digest), type: 'file', mode: 0o444, mtime }, item.manifest.bytes);
      }
    }
    const index = {
      schemaVersion: 2,
      mediaType: MediaTypes.ociIndex,
      manifests: items.flatMap((item) => {
        const desc = { mediaType: item.manifest.mediaType, digest: item.manifest.digest, size: item.manifest.bytes.length };
        if (!item.refs.length) return [desc];
        return item.refs.map((r) => ({ ...desc, annotations: { [CONTAINERD_NAME]: formatReference(r), [REF_NAME]: r.tag! } }));
      }),
    };
    const dockerManifest = items.map((item) => ({
      Config: blobPath(item.config.digest),
      RepoTags: item.refs.length ? item.refs.map((r) => familiarReference(r)) : null,
      Layers: item.layers.map((l) => blobPath(l.digest)),
    }));
    const repositories: Record<string, Record<string, string>> = {};
    for (const item of items) {
      const top = item.layers[item.layers.length - 1]?.digest ?? item.config.digest;
      for (const r of item.refs) (repositories[familiarName(r)] ??= {})[r.tag!] = top.slice('sha256:'.length);
    }
    await addBuffer(pack, { name: 'index.json', type: 'file', mode: 0o644, mtime }, Buffer.from(JSON.stringify(index)));
    await addBuffer(pack, { name: 'manifest.json', type: 'file', mode: 0o644, mtime }, Buffer.from(JSON.stringify(dockerManifest)));
    await addBuffer(pack, { name: 'oci-layout', type: 'file', mode: 0o644, mtime }, Buffer.from(JSON.stringify({ imageLayoutVersion: '1.0.0' })));
    if (Object.keys(repositories).length) await addBuffer(pack, { name: 'repositories', type: 'file', mode: 0o644, mtime }, Buffer.from(JSON.stringify(repositories)));
    pack.finalize();
  };
  pack.pipe(out);
  run().catch((err) => {
    pack.destroy(err);
    out.destroy(err);
  });
  // A client that goes away stops the reads from the store.
  out.once('close', () => {
    if (!pack.destroyed) pack.destroy();
  });
  return out;
}

function addBuffer(pack: tar.Pack, header: Partial<tar.Header> & { name: string }, data?: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (err?: Error | null) => (err ? reject(err) : resolve());
    if (header.type === 'file') pack.entry({ ...header, size: data?.length ?? 0 }, data ?? Buffer.alloc(0), done);
    else pack.entry(header, done);
  });
}
