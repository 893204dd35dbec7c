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
 * the content store one after another, never buffered.
 *
 * load reads that format, older `docker save` archives (`<id>/layer.tar`, `<id>.json`,
 * manifest.json), skopeo's docker-archive, plain OCI layouts (names from annotations), each plain
 * or gzip-compressed. The archive is spooled to a private directory first (docker archives list
 * manifest.json last), every file hashed on the way; every digest is checked (blob paths, configs,
 * uncompressed layers against the config's diff IDs) before anything is stored; the layers are
 * unpacked, and the image recorded and tagged last. A failed load leaves no image and no new blob.
 */
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PassThrough, Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as tar from 'tar-stream';
import type { Descriptor, ImageConfig, ImageRef } from '../contracts/types';
import { MediaTypes } from '../contracts/types';
import { InvalidArgumentError, NotFoundError } from '../contracts/errors';
import { type ContentStore, DigestMismatchError, sha256Digest } from '../content/store';
import type { ImageService } from './service';
import { type ImageRecord, checkConfigSize } from './store';
import type { LayerUnpacker } from './pull';
import { parseConfig } from './pull';
import { hostPlatform, parseManifest, selectPlatform } from './manifest';
import { familiarName, familiarReference, formatReference, parseReference } from './reference';
import { buildManifest, formatOf } from './manifest-build';
import { recordImage } from './record-image';
import { decompressIfNeeded } from './import';

const REF_NAME = 'org.opencontainers.image.ref.name';
const CONTAINERD_NAME = 'io.containerd.image.name';
/** manifest.json, index.json, configs and manifests are small; a bigger one is not an image archive. */
const MAX_METADATA_BYTES = 16 * 1024 * 1024;
const blobPath = (digest: string) => `blobs/sha256/${digest.slice('sha256:'.length)}`;

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

interface SaveItem {
  rec: ImageRecord;
  refs: ImageRef[];
  manifest: { bytes: Buffer; mediaType: string; digest: string };
  config: Descriptor;
  layers: Descriptor[];
}

/** One file of a spooled archive. */
interface SpooledFile {
  file: string;
  size: number;
  digest: string;
}

export class ImageArchiver {
  constructor(private readonly deps: ArchiveDeps) {}

  // ---- save ----------------------------------------------------------------------------------

  /**
   * Resolve every name first (a missing image is a 404 before any byte is sent), then return the
   * archive as a stream.
   */
  async save(names: string[]): Promise<Readable> {
    if (!names.length) throw new InvalidArgumentError('save needs at least one image name');
    const items = new Map<string, SaveItem>();
    for (const name of names) {
      const { rec, refs } = this.resolveForSave(name);
      const item = items.get(rec.id) ?? { rec, refs: [], ...(await this.partsOf(rec)) };
      for (const r of refs) if (!item.refs.some((x) => formatReference(x) === formatReference(r))) item.refs.push(r);
      items.set(rec.id, item);
    }
    for (const item of items.values()) {
      for (const d of [item.config, ...item.layers]) {
        if (!(await this.deps.content.has(d.digest))) throw new NotFoundError(`blob ${d.digest} of image ${item.rec.id} is missing from the content store`);
      }
    }
    return this.writeArchive([...items.values()]);
  }

  /** `busybox` saves every tag of the repository; `busybox:1` that tag; an ID the image untagged. */
  private resolveForSave(name: string): { rec: ImageRecord; refs: ImageRef[] } {
    const store = this.deps.images.store;
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

  private async partsOf(rec: ImageRecord): Promise<Omit<SaveItem, 'rec' | 'refs'>> {
    const content = this.deps.content;
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

  private writeArchive(items: SaveItem[]): Readable {
    const pack = tar.pack();
    const out = new PassThrough();
    const mtime = new Date(0);
    const content = this.deps.content;
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

  // ---- load ----------------------------------------------------------------------------------

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

function addBuffer(pack: tar.Pack, header: Partial<tar.Header> & { name: string }, data?: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (err?: Error | null) => (err ? reject(err) : resolve());
    if (header.type === 'file') pack.entry({ ...header, size: data?.length ?? 0 }, data ?? Buffer.alloc(0), done);
    else pack.entry(header, done);
  });
}

// ---- spooling ------------------------------------------------------------------------------------

interface SpooledArchive {
  files: Map<string, SpooledFile>;
  /** Symlinks and hardlinks between entries: name -> target name (old docker archives link shared layers). */
  links: Map<string, string>;
}

/** `./a//b/` -> `a/b`; refuses names that climb out. */
function normalizeName(name: string): string {
  const norm = path.posix.normalize(name.replace(/^\/+/, '')).replace(/\/+$/, '');
  return norm === '.' ? '' : norm;
}

/** Unpack the archive's regular files into `dir` under numbered names, hashing each. */
async function spool(input: Readable, dir: string): Promise<SpooledArchive> {
  const files = new Map<string, SpooledFile>();
  const links = new Map<string, string>();
  const extract = tar.extract();
  let n = 0;
  const onEntry = async (header: tar.Header, entry: Readable): Promise<void> => {
    const name = normalizeName(header.name);
    const type = header.type;
    if ((type === 'file' || type === 'contiguous-file') && name && !name.startsWith('../')) {
      const file = path.join(dir, String(n++));
      const hash = createHash('sha256');
      let size = 0;
      const hasher = new Transform({
        transform(chunk: Buffer, _e, cb) {
          hash.update(chunk);
          size += chunk.length;
          cb(null, chunk);
        },
      });
      await pipeline(entry, hasher, fs.createWriteStream(file, { mode: 0o600 }));
      files.set(name, { file, size, digest: 'sha256:' + hash.digest('hex') });
      return;
    }
    if ((type === 'symlink' || type === 'link') && header.linkname) {
      const target = type === 'symlink' ? path.posix.join(path.posix.dirname(name), header.linkname) : header.linkname;
      links.set(name, normalizeName(target));
    }
    // As tar-stream's README drains: listen for the end first, then let it flow.
    const ended = new Promise((resolve) => entry.once('end', resolve));
    entry.resume();
    await ended;
  };
  // The entry event with its `next` callback (not the async iterator, whose end can race the
  // last entry of a small archive that arrived in one chunk).
  extract.on('entry', (header, entry, next) => {
    onEntry(header, entry as unknown as Readable).then(() => next(), (err: Error) => next(err));
  });
  try {
    await pipeline(input, extract);
  } catch (err) {
    throw new InvalidArgumentError(`the archive is not a valid tar: ${(err as Error).message}`, { cause: err });
  }
  if (!files.size) throw new InvalidArgumentError('the archive holds no files: not an image archive');
  return { files, links };
}

function lookup(archive: SpooledArchive, name: string, what: string): SpooledFile {
  let cur = normalizeName(name);
  for (let hops = 0; hops < 16; hops++) {
    const f = archive.files.get(cur);
    if (f) return f;
    const next = archive.links.get(cur);
    if (next === undefined) break;
    cur = next;
  }
  throw new InvalidArgumentError(`the archive lacks ${what} (${name})`);
}

async function readSmall(f: SpooledFile, what: string): Promise<Buffer> {
  if (f.size > MAX_METADATA_BYTES) throw new InvalidArgumentError(`${what} is larger than ${MAX_METADATA_BYTES} bytes`);
  return fs.promises.readFile(f.file);
}

async function readJsonFile(f: SpooledFile, what: string): Promise<any> {
  const bytes = await readSmall(f, what);
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new InvalidArgumentError(`${what} is not valid JSON: ${(err as Error).message}`);
  }
}

/** Whether a spooled file starts with the gzip magic. */
async function isGzip(f: SpooledFile): Promise<boolean> {
  const fh = await fs.promises.open(f.file, 'r');
  try {
    const buf = Buffer.alloc(2);
    const { bytesRead } = await fh.read(buf, 0, 2, 0);
    return bytesRead === 2 && buf[0] === 0x1f && buf[1] === 0x8b;
  } finally {
    await fh.close();
  }
}

// ---- planning: what the archive holds, all digests checked --------------------------------------

interface LoadPlan {
  config: ImageConfig;
  configBytes: Buffer;
  layers: { desc: Descriptor; file: SpooledFile }[];
  /** The archive's own manifest, when it has one for this image (keeps the manifest digest). */
  manifest?: { bytes: Buffer; mediaType: string };
  tags: ImageRef[];
}

async function planLoad(archive: SpooledArchive): Promise<LoadPlan[]> {
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
