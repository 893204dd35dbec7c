/**
 * The last step of making an image, shared by commit, import, load and build: config and manifest
 * into the content store, the missing layers unpacked, then the record and its tags written (the
 * tag last, so a name never points at a half-made image).
 */
import type { Descriptor, ImageConfig, ImageRef } from '../contracts/types';
import { BerthError, InvalidArgumentError } from '../contracts/errors';
import { type ContentStore, sha256Digest } from '../content/store';
import { type ManifestFormat, buildManifest } from './manifest-build';
import type { LayerUnpacker } from './pull';
import { parseReference } from './reference';
import type { ImageService } from './service';
import { type ImageRecord, chainIds } from './store';

/**
 * Store config and manifest, unpack the layers that are missing, then record the image and tag it
 * (tag last). Shared by commit, import and load.
 */
export async function recordImage(
  deps: { content: ContentStore; images: ImageService; unpacker: () => LayerUnpacker | undefined },
  parts: { config: ImageConfig; configBytes?: Buffer; layers: Descriptor[]; format: ManifestFormat; manifest?: { bytes: Buffer; mediaType: string }; tags?: ImageRef[]; parent?: string },
): Promise<ImageRecord> {
  const configBytes = parts.configBytes ?? Buffer.from(JSON.stringify(parts.config));
  const configDigest = sha256Digest(configBytes);
  const diffIds = parts.config.rootfs.diff_ids;
  if (diffIds.length !== parts.layers.length) throw new BerthError(`image config lists ${diffIds.length} diff IDs for ${parts.layers.length} layers`);
  const chains = chainIds(diffIds);
  const unpacker = deps.unpacker();
  if (!unpacker) throw new BerthError('no storage driver is configured: cannot unpack the image layers');
  let built: { bytes: Buffer; mediaType: string };
  let layers: Descriptor[];
  if (parts.manifest) {
    built = parts.manifest;
    layers = parts.layers;
  } else {
    const m = buildManifest({ mediaType: '', digest: configDigest, size: configBytes.length }, parts.layers, parts.format);
    built = m;
    layers = m.layers;
  }
  // Held while the image is made. If making it fails, what no image uses goes again (the layers
  // the caller stored, the config, the manifest): a refused layer leaves no orphaned blobs.
  const blobs = [configDigest, sha256Digest(built.bytes), ...layers.map((l) => l.digest)];
  const release = deps.content.lease(blobs);
  try {
    await deps.content.put(configBytes);
    const sizes = await unpacker.unpack(
      layers.map((blob, i) => ({ blob, diffId: diffIds[i], chainId: chains[i], parent: i ? chains[i - 1] : null })),
      () => undefined,
    );
    const manifestDigest = await deps.content.put(built.bytes);
    const record: ImageRecord = {
      id: configDigest,
      manifestDigest,
      manifestMediaType: built.mediaType,
      configDigest,
      layers,
      diffIds,
      chainIds: chains,
      repoDigests: [],
      created: parts.config.created,
      architecture: parts.config.architecture,
      os: parts.config.os,
      size: sizes.reduce((a, b) => a + b, 0),
      layerSizes: sizes,
      recorded: new Date().toISOString(),
      ...(parts.parent ? { parent: parts.parent } : {}),
    };
    const [first, ...more] = parts.tags ?? [];
    await deps.images.store.add(record, first);
    for (const t of more) await deps.images.store.tag(record.id, t);
    return record;
  } catch (err) {
    release();
    const used = new Set(deps.images.store.list().flatMap((r) => [r.configDigest, r.manifestDigest, ...r.layers.map((l) => l.digest)]));
    await deps.content.dropUnused(blobs, (d) => used.has(d));
    throw err;
  } finally {
    release();
  }
}

/** `repo` + `tag` as the API gets them (`tag` may be empty, `repo` may carry a tag). */
export function repoTag(repo: string | undefined | null, tag: string | undefined | null): ImageRef | undefined {
  if (!repo) {
    if (tag) throw new InvalidArgumentError(`tag "${tag}" given without a repository name`);
    return undefined;
  }
  const ref = parseReference(tag ? `${repo}:${tag}` : repo);
  if (ref.digest) throw new InvalidArgumentError(`refusing to create a tag with a digest reference: ${repo}`);
  return ref;
}
