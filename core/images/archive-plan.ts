/**
 * Planning a load: what a spooled archive holds — the images of a docker archive's manifest.json
 * (docker save, skopeo docker-archive, Docker 25+) or of an OCI layout's index.json — with every
 * digest checked (blob paths, configs, uncompressed layers against the config's diff IDs) before
 * anything is stored.
 */
import type { Descriptor, ImageConfig, ImageRef } from '../contracts/types';
import { MediaTypes } from '../contracts/types';
import { InvalidArgumentError } from '../contracts/errors';
import { DigestMismatchError, sha256Digest } from '../content/store';
import { CONTAINERD_NAME, REF_NAME, blobPath } from './archive-layout';
import { type SpooledArchive, type SpooledFile, isGzip, lookup, normalizeName, readJsonFile, readSmall } from './archive-spool';
import { hostPlatform, parseManifest, selectPlatform } from './manifest';
import { parseConfig } from './pull';
import { familiarReference, parseReference } from './reference';
import { checkConfigSize } from './store';

export interface LoadPlan {
  config: ImageConfig;
  configBytes: Buffer;
  layers: { desc: Descriptor; file: SpooledFile }[];
  /** The archive's own manifest, when it has one for this image (keeps the manifest digest). */
  manifest?: { bytes: Buffer; mediaType: string };
  tags: ImageRef[];
}

export async function planLoad(archive: SpooledArchive): Promise<LoadPlan[]> {
  const ociManifests = archive.files.has('index.json') ? await ociEntries(archive) : [];
  if (archive.files.has('manifest.json')) return dockerPlans(archive, ociManifests);
  if (ociManifests.length) return Promise.all(ociManifests.map((m) => ociPlan(archive, m)));
  if (archive.files.has('index.json')) throw new InvalidArgumentError('the archive is an OCI layout with no image manifests in index.json');
  throw new InvalidArgumentError('not an image archive: it has neither manifest.json (docker save) nor index.json (OCI layout)');
}

/** Check a file against a digest the archive claims for it. */
function verifyFile(f: SpooledFile, digest: string, what: string, size?: number): void {
  if (size !== undefined && f.size !== size) throw new InvalidArgumentError(`${what}: size mismatch: expected ${size} bytes, got ${f.size}`);
  if (f.digest !== digest) throw new DigestMismatchError(digest, f.digest, what);
}

interface OciEntry {
  manifestBytes: Buffer;
  mediaType: string;
  config: Descriptor;
  layers: Descriptor[];
  names: ImageRef[];
}

/** index.json's image manifests (an index inside picks the host platform), each verified. */
async function ociEntries(archive: SpooledArchive): Promise<OciEntry[]> {
  const index = await readJsonFile(lookup(archive, 'index.json', 'index.json'), 'index.json');
  if (!Array.isArray(index?.manifests)) throw new InvalidArgumentError('index.json has no manifests list');
  const out: OciEntry[] = [];
  for (const [i, entry] of (index.manifests as Descriptor[]).entries()) {
    const what = `index.json manifests[${i}]`;
    if (typeof entry?.digest !== 'string' || !/^sha256:[a-f0-9]{64}$/.test(entry.digest)) throw new InvalidArgumentError(`${what}: invalid digest ${JSON.stringify(entry?.digest)}`);
    let desc = entry;
    let f = lookup(archive, blobPath(desc.digest), `manifest ${desc.digest}`);
    verifyFile(f, desc.digest, `manifest ${desc.digest}`, desc.size);
    let bytes = await readSmall(f, `manifest ${desc.digest}`);
    let parsed = parseManifest(bytes, desc.mediaType ?? '', `${what}`);
    if (parsed.kind === 'index') {
      desc = selectPlatform(parsed, hostPlatform(), what);
      f = lookup(archive, blobPath(desc.digest), `manifest ${desc.digest}`);
      verifyFile(f, desc.digest, `manifest ${desc.digest}`, desc.size);
      bytes = await readSmall(f, `manifest ${desc.digest}`);
      parsed = parseManifest(bytes, desc.mediaType ?? '', what);
      if (parsed.kind !== 'manifest') throw new InvalidArgumentError(`${what}: nested indexes are not supported`);
    }
    out.push({ manifestBytes: bytes, mediaType: parsed.mediaType, config: parsed.config, layers: parsed.layers, names: namesOf(entry.annotations) });
  }
  return out;
}

/** An image name from index annotations: containerd's full name, else ref.name when it is a full reference. */
function namesOf(annotations: Record<string, string> | undefined): ImageRef[] {
  const candidates = [annotations?.[CONTAINERD_NAME], annotations?.[REF_NAME]];
  for (const c of candidates) {
    // A bare tag (`latest`, as umoci writes) names no repository: the image loads untagged.
    if (!c || !/[:/]/.test(c)) continue;
    try {
      const ref = parseReference(c);
      if (!ref.digest) return [ref];
    } catch {
      /* not a reference: try the next */
    }
  }
  return [];
}

async function ociPlan(archive: SpooledArchive, m: OciEntry): Promise<LoadPlan> {
  const what = `image ${sha256Digest(m.manifestBytes)}`;
  const configFile = lookup(archive, blobPath(m.config.digest), `config ${m.config.digest}`);
  verifyFile(configFile, m.config.digest, `config of ${what}`, m.config.size);
  checkConfigSize(configFile.size, m.names.map((n) => familiarReference(n)).join(', ') || what);
  const configBytes = await readSmall(configFile, `config of ${what}`);
  const config = parseConfig(configBytes, what);
  if (config.rootfs.diff_ids.length !== m.layers.length) throw new InvalidArgumentError(`${what}: config lists ${config.rootfs.diff_ids.length} diff IDs for ${m.layers.length} layers`);
  const layers = m.layers.map((desc, i) => {
    const file = lookup(archive, blobPath(desc.digest), `layer ${desc.digest}`);
    verifyFile(file, desc.digest, `layer ${i} of ${what}`, desc.size);
    // An uncompressed layer's digest is its diff ID: check it now rather than at unpack.
    if (!/gzip|zstd/.test(desc.mediaType) && desc.digest !== config.rootfs.diff_ids[i]) {
      throw new DigestMismatchError(config.rootfs.diff_ids[i], desc.digest, `layer ${i} of ${what} (diff ID)`);
    }
    return { desc, file };
  });
  return { config, configBytes, layers, manifest: { bytes: m.manifestBytes, mediaType: m.mediaType }, tags: m.names };
}

/** manifest.json (docker save, skopeo docker-archive, Docker 25+). */
async function dockerPlans(archive: SpooledArchive, ociManifests: OciEntry[]): Promise<LoadPlan[]> {
  const doc = await readJsonFile(lookup(archive, 'manifest.json', 'manifest.json'), 'manifest.json');
  if (!Array.isArray(doc) || !doc.length) throw new InvalidArgumentError('manifest.json is not a non-empty list of images');
  const plans: LoadPlan[] = [];
  for (const [i, entry] of doc.entries()) {
    const what = `manifest.json entry ${i}`;
    if (typeof entry?.Config !== 'string' || !Array.isArray(entry.Layers)) throw new InvalidArgumentError(`${what} lacks Config or Layers`);
    const configFile = lookup(archive, entry.Config, `the config of ${what}`);
    // Config paths name the config digest: `<hex>.json` (docker < 25) or `blobs/sha256/<hex>`.
    const named = /(?:^|\/)([a-f0-9]{64})(?:\.json)?$/.exec(normalizeName(entry.Config));
    if (named) verifyFile(configFile, `sha256:${named[1]}`, `config ${entry.Config}`);
    checkConfigSize(configFile.size, Array.isArray(entry.RepoTags) && entry.RepoTags.length ? entry.RepoTags.join(', ') : entry.Config);
    const configBytes = await readSmall(configFile, `config ${entry.Config}`);
    const config = parseConfig(configBytes, entry.Config);
    if (config.rootfs.diff_ids.length !== entry.Layers.length) {
      throw new InvalidArgumentError(`${what}: config lists ${config.rootfs.diff_ids.length} diff IDs for ${entry.Layers.length} layers`);
    }
    const layers: LoadPlan['layers'] = [];
    for (const [j, layerPath] of (entry.Layers as string[]).entries()) {
      if (typeof layerPath !== 'string') throw new InvalidArgumentError(`${what}: Layers[${j}] is not a path`);
      const file = lookup(archive, layerPath, `layer ${j} of ${what}`);
      const blobNamed = /^blobs\/sha256\/([a-f0-9]{64})$/.exec(normalizeName(layerPath));
      if (blobNamed) verifyFile(file, `sha256:${blobNamed[1]}`, `layer ${layerPath}`);
      const gz = await isGzip(file);
      // Uncompressed: the file's digest must be the diff ID. gzip: checked while unpacking.
      if (!gz) verifyFile(file, config.rootfs.diff_ids[j], `layer ${layerPath} (diff ID)`);
      layers.push({ desc: { mediaType: gz ? MediaTypes.ociLayerGzip : MediaTypes.ociLayer, digest: file.digest, size: file.size }, file });
    }
    // The archive's OCI manifest for this image, if it lists exactly these blobs (Docker 25+, berth save).
    const configDigest = sha256Digest(configBytes);
    const own = ociManifests.find((m) => m.config.digest === configDigest && m.layers.length === layers.length && m.layers.every((l, k) => l.digest === layers[k].desc.digest));
    const tags: ImageRef[] = [];
    for (const t of (entry.RepoTags ?? []) as string[]) {
      try {
        tags.push(parseReference(t));
      } catch (err) {
        throw new InvalidArgumentError(`${what}: RepoTags holds an invalid name ${JSON.stringify(t)}: ${(err as Error).message}`);
      }
    }
    plans.push({
      config,
      configBytes,
      layers: own ? own.layers.map((desc, k) => ({ desc, file: layers[k].file })) : layers,
      manifest: own ? { bytes: own.manifestBytes, mediaType: own.mediaType } : undefined,
      tags,
    });
  }
  return plans;
}
