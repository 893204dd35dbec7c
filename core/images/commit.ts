/**
 * `commit`: a container's changes become a new image layer on top of its image. The storage
 * driver's diff (an OCI layer tar) is gzip-compressed into the content store in one pass that
 * hashes both the compressed bytes (the blob digest) and the uncompressed ones (the diff ID);
 * the config gets the diff ID, a history row and the `-c` changes; the manifest keeps the media
 * types of the base image (Docker schema2 stays schema2, everything else is OCI); the layer is
 * applied to the storage driver under its chain ID so the image runs at once; the record and the
 * tag are written last.
 *
 * Also home of the helpers import and load share: compressing a layer into the store, applying
 * Dockerfile-style changes, and writing a manifest.
 */
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ContainerConfig, Descriptor, HistoryEntry, ImageConfig, ImageRef } from '../contracts/types';
import { MediaTypes } from '../contracts/types';
import { BerthError, InvalidArgumentError, NotFoundError } from '../contracts/errors';
import type { StorageDriver } from '../contracts/storage';
import { type ContentStore, sha256Digest } from '../content/store';
import type { ImageService } from './service';
import { type ImageRecord, chainIds } from './store';
import type { LayerUnpacker } from './pull';
import { parseReference } from './reference';
import { Coalesce } from '../util/stream';
import { AdaptiveGzip } from '../layers/compression';

// ---- layers into the content store ---------------------------------------------------------

export interface StoredLayer {
  /** The compressed blob as the manifest lists it. */
  blob: Descriptor;
  /** sha256 of the uncompressed tar. */
  diffId: string;
  /** Bytes of the uncompressed tar. */
  uncompressedSize: number;
}

/** Counts and hashes what flows through, unchanged. */
export class HashingStream extends Transform {
  private readonly hash = createHash('sha256');
  bytes = 0;
  override _transform(chunk: Buffer, _e: BufferEncoding, cb: (err?: Error | null, data?: Buffer) => void): void {
    this.bytes += chunk.length;
    this.hash.update(chunk);
    cb(null, chunk);
  }
  digest(): string {
    return 'sha256:' + this.hash.digest('hex');
  }
}

/**
 * gzip an uncompressed layer tar into the content store: one pass computes the diff ID, the blob
 * digest and size while the compressed bytes go to an ingest file; the store then commits it.
 */
export async function storeLayer(content: ContentStore, tar: Readable, mediaType: string = MediaTypes.ociLayerGzip): Promise<StoredLayer> {
  const tmp = path.join(content.ingestDir, `layer-${randomBytes(8).toString('hex')}`);
  const uncompressed = new HashingStream();
  const compressed = new HashingStream();
  try {
    await pipeline(tar, uncompressed, new AdaptiveGzip(), compressed, new Coalesce(), fs.createWriteStream(tmp, { mode: 0o600 }));
    const blob: Descriptor = { mediaType, digest: compressed.digest(), size: compressed.bytes };
    // Hashed while written: the file becomes the blob as it is, no second read and copy.
    await content.adopt(tmp, blob.digest);
    return { blob, diffId: uncompressed.digest(), uncompressedSize: uncompressed.bytes };
  } finally {
    await fs.promises.rm(tmp, { force: true });
  }
}

// ---- Dockerfile-style changes (`commit -c`, `import -c`) --------------------------------------

const CHANGE_INSTRUCTIONS = ['CMD', 'ENTRYPOINT', 'ENV', 'WORKDIR', 'USER', 'LABEL', 'EXPOSE', 'VOLUME', 'STOPSIGNAL'];

/** `["a","b"]` -> ['a','b']; anything else is the shell form, run by the image's shell. */
function execOrShell(rest: string, shell: string[], what: string): string[] {
  const trimmed = rest.trim();
  if (trimmed.startsWith('[')) {
    try {
      const parsed = JSON.parse(trimmed);
      if (Array.isArray(parsed) && parsed.every((a) => typeof a === 'string')) return parsed;
    } catch {
      /* not JSON: Docker then treats it as the shell form */
    }
  }
  if (!trimmed) throw new InvalidArgumentError(`${what} requires at least one argument`);
  return [...shell, trimmed];
}

/** Split `a=b "c d"=e f='g h'` into words, honouring quotes and backslash escapes. */
function splitWords(s: string, what: string): string[] {
  const words: string[] = [];
  let cur = '';
  let quote: string | null = null;
  let inWord = false;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (quote) {
      if (c === quote) quote = null;
      else if (c === '\\' && quote === '"' && i + 1 < s.length) cur += s[++i];
      else cur += c;
    } else if (c === '"' || c === "'") {
      quote = c;
      inWord = true;
    } else if (c === '\\' && i + 1 < s.length) {
      cur += s[++i];
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) words.push(cur);
      cur = '';
      inWord = false;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (quote) throw new InvalidArgumentError(`${what}: unterminated quote in ${JSON.stringify(s)}`);
  if (inWord) words.push(cur);
  return words;
}

/** `k=v k2="v 2"` or the legacy `k v with spaces` (one pair) of ENV and LABEL. */
function keyValues(rest: string, what: string): [string, string][] {
  const trimmed = rest.trim();
  if (!trimmed) throw new InvalidArgumentError(`${what} requires at least one argument`);
  const first = /^(\S+)/.exec(trimmed)![1];
  if (!first.includes('=')) {
    const value = trimmed.slice(first.length).trim();
    if (!value) throw new InvalidArgumentError(`${what} names ${first} but gives it no value`);
    return [[first, value]];
  }
  return splitWords(trimmed, what).map((w) => {
    const eq = w.indexOf('=');
    if (eq <= 0) throw new InvalidArgumentError(`${what}: ${JSON.stringify(w)} is not KEY=VALUE`);
    return [w.slice(0, eq), w.slice(eq + 1)];
  });
}

/**
 * Apply Dockerfile instructions to an image config, as `docker commit -c` / `docker import -c` do:
 * CMD, ENTRYPOINT, ENV, WORKDIR, USER, LABEL, EXPOSE, VOLUME, STOPSIGNAL. Returns a new object.
 */
export function applyChanges(base: ContainerConfig, changes: string[]): ContainerConfig {
  const cfg: ContainerConfig = structuredClone(base);
  for (const raw of changes) {
    const line = raw.trim();
    if (!line) continue;
    const m = /^(\S+)\s*([\s\S]*)$/.exec(line)!;
    const instruction = m[1].toUpperCase();
    const rest = m[2];
    const what = `change ${JSON.stringify(raw)}`;
    const shell = cfg.Shell?.length ? cfg.Shell : ['/bin/sh', '-c'];
    switch (instruction) {
      case 'CMD':
        cfg.Cmd = execOrShell(rest, shell, what);
        break;
      case 'ENTRYPOINT':
        cfg.Entrypoint = execOrShell(rest, shell, what);
        // As in a Dockerfile: a new ENTRYPOINT resets the CMD inherited from the base.
        cfg.Cmd = null;
        break;
      case 'ENV': {
        const env = [...(cfg.Env ?? [])];
        for (const [k, v] of keyValues(rest, what)) {
          const i = env.findIndex((e) => e.split('=')[0] === k);
          if (i >= 0) env[i] = `${k}=${v}`;
          else env.push(`${k}=${v}`);
        }
        cfg.Env = env;
        break;
      }
      case 'LABEL':
        cfg.Labels = { ...(cfg.Labels ?? {}), ...Object.fromEntries(keyValues(rest, what)) };
        break;
      case 'WORKDIR': {
        const dir = rest.trim();
        if (!dir) throw new InvalidArgumentError(`${what}: WORKDIR requires a path`);
        cfg.WorkingDir = path.posix.resolve('/', cfg.WorkingDir || '/', dir);
        break;
      }
      case 'USER': {
        const user = rest.trim();
        if (!user) throw new InvalidArgumentError(`${what}: USER requires a user name or id`);
        cfg.User = user;
        break;
      }
      case 'EXPOSE': {
        const ports = { ...(cfg.ExposedPorts ?? {}) };
        for (const p of splitWords(rest, what)) {
          const pm = /^(\d+)(?:-(\d+))?(?:\/(tcp|udp|sctp))?$/i.exec(p);
          if (!pm) throw new InvalidArgumentError(`${what}: invalid port ${JSON.stringify(p)}`);
          const from = Number(pm[1]);
          const to = pm[2] ? Number(pm[2]) : from;
          if (from < 1 || to > 65535 || to < from) throw new InvalidArgumentError(`${what}: invalid port range ${JSON.stringify(p)}`);
          for (let port = from; port <= to; port++) ports[`${port}/${(pm[3] ?? 'tcp').toLowerCase()}`] = {};
        }
        cfg.ExposedPorts = ports;
        break;
      }
      case 'VOLUME': {
        const trimmed = rest.trim();
        let vols: string[];
        if (trimmed.startsWith('[')) {
          try {
            vols = JSON.parse(trimmed);
          } catch {
            throw new InvalidArgumentError(`${what}: VOLUME is not a JSON array of strings`);
          }
          if (!Array.isArray(vols) || !vols.every((v) => typeof v === 'string')) throw new InvalidArgumentError(`${what}: VOLUME is not a JSON array of strings`);
        } else vols = splitWords(trimmed, what);
        if (!vols.length) throw new InvalidArgumentError(`${what}: VOLUME requires at least one path`);
        cfg.Volumes = { ...(cfg.Volumes ?? {}), ...Object.fromEntries(vols.map((v) => [v, {}])) };
        break;
      }
      case 'STOPSIGNAL': {
        const sig = rest.trim();
        if (!/^(SIG)?[A-Z0-9+-]+$|^\d+$/i.test(sig)) throw new InvalidArgumentError(`${what}: invalid STOPSIGNAL ${JSON.stringify(sig)}`);
        cfg.StopSignal = sig;
        break;
      }
      default:
        throw new InvalidArgumentError(
          `${what}: ${instruction} is not a supported change instruction (one of ${CHANGE_INSTRUCTIONS.join(', ')})`,
        );
    }
  }
  return cfg;
}

// ---- manifests ---------------------------------------------------------------------------------

export type ManifestFormat = 'oci' | 'docker';

const TO_DOCKER: Record<string, string> = {
  [MediaTypes.ociLayerGzip]: MediaTypes.dockerLayerGzip,
  [MediaTypes.ociLayer]: 'application/vnd.docker.image.rootfs.diff.tar',
  [MediaTypes.ociLayerNondistGzip]: MediaTypes.dockerForeignLayerGzip,
};
const TO_OCI: Record<string, string> = Object.fromEntries(Object.entries(TO_DOCKER).map(([o, d]) => [d, o]));

/** The same layer bytes under the other format's media type (the blob does not change). */
export function layerMediaType(mediaType: string, format: ManifestFormat): string {
  return (format === 'docker' ? TO_DOCKER[mediaType] : TO_OCI[mediaType]) ?? mediaType;
}

/** The format an image's new manifest should use: schema2 when the base was schema2. */
export function formatOf(rec: Pick<ImageRecord, 'manifestMediaType' | 'layers'> | undefined): ManifestFormat {
  if (!rec) return 'oci';
  if (rec.manifestMediaType) return rec.manifestMediaType === MediaTypes.dockerManifest ? 'docker' : 'oci';
  return rec.layers.length && rec.layers.every((l) => l.mediaType.startsWith('application/vnd.docker.')) ? 'docker' : 'oci';
}

/** Serialise a manifest for a config and its layers; media types are made consistent with the format. */
export function buildManifest(config: Descriptor, layers: Descriptor[], format: ManifestFormat): { bytes: Buffer; mediaType: string; layers: Descriptor[] } {
  const mediaType = format === 'docker' ? MediaTypes.dockerManifest : MediaTypes.ociManifest;
  const configType = format === 'docker' ? MediaTypes.dockerConfig : MediaTypes.ociConfig;
  const outLayers = layers.map((l) => {
    const d: Descriptor = { mediaType: layerMediaType(l.mediaType, format), digest: l.digest, size: l.size };
    if (l.urls) d.urls = l.urls;
    if (l.annotations) d.annotations = l.annotations;
    return d;
  });
  const doc = { schemaVersion: 2, mediaType, config: { mediaType: configType, digest: config.digest, size: config.size }, layers: outLayers };
  return { bytes: Buffer.from(JSON.stringify(doc)), mediaType, layers: outLayers };
}

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

// ---- commit ------------------------------------------------------------------------------------

/** What commit needs of a container (the container manager's record). */
export interface CommitSource {
  Id: string;
  Image: string;
  Path: string;
  Args: string[];
  Config: {
    User?: string;
    Env?: string[] | null;
    Cmd?: string[] | null;
    Entrypoint?: string[] | null;
    WorkingDir?: string;
    Labels?: Record<string, string> | null;
    StopSignal?: string;
    ExposedPorts?: Record<string, object>;
    Volumes?: Record<string, object> | null;
  };
}

export interface CommitOptions {
  container: string;
  repo?: string;
  tag?: string;
  comment?: string;
  author?: string;
  /** Accepted for Docker compatibility; ignored until the cgroups freezer is available. */
  pause?: boolean;
  /** Dockerfile instructions (`-c`). */
  changes?: string[];
  /** Config overrides from the request body (Docker's commit body). */
  config?: Partial<ContainerConfig>;
}

export interface CommitDeps {
  content: ContentStore;
  images: ImageService;
  container: (ref: string) => CommitSource;
  storage: () => StorageDriver | undefined;
  unpacker: () => LayerUnpacker | undefined;
}

export class ImageCommitter {
  constructor(private readonly deps: CommitDeps) {}

  async commit(opts: CommitOptions): Promise<ImageRecord> {
    const tag = repoTag(opts.repo, opts.tag);
    const ctr = this.deps.container(opts.container);
    const storage = this.deps.storage();
    if (!storage) throw new BerthError('no storage driver is configured: cannot commit');
    const base = this.deps.images.store.get(ctr.Image);
    if (!base) throw new NotFoundError(`image ${ctr.Image} of container ${opts.container} no longer exists`);
    const baseConfig = await this.deps.images.config(base);
    // Parse the changes before doing any work: a typo should not cost a layer.
    const imageCfg = mergeCommitConfig(applyChanges(opts.config ?? {}, opts.changes ?? []), ctr.Config, baseConfig.config ?? {});

    const layer = await storeLayer(this.deps.content, await storage.diff(ctr.Id));
    const now = new Date().toISOString();
    // Keep history and layers aligned: a base without history gets one row per layer first.
    const history: HistoryEntry[] = baseConfig.history?.length ? [...baseConfig.history] : base.diffIds.map(() => ({ created: baseConfig.created }));
    const entry: HistoryEntry = { created: now, created_by: [ctr.Path, ...ctr.Args].join(' ') };
    if (opts.author) entry.author = opts.author;
    if (opts.comment) entry.comment = opts.comment;
    history.push(entry);
    const config: ImageConfig = {
      ...baseConfig,
      created: now,
      author: opts.author || undefined,
      config: imageCfg,
      rootfs: { type: 'layers', diff_ids: [...baseConfig.rootfs.diff_ids, layer.diffId] },
      history,
    };
    if (!config.author) delete config.author;
    const format = formatOf(base);
    return recordImage(this.deps, {
      config,
      layers: [...base.layers, layer.blob],
      format,
      tags: tag ? [tag] : [],
      parent: base.id,
    });
  }
}

/**
 * Docker's commit merge: the request's config wins; what it leaves unset comes from the container's
 * config; Shell, Healthcheck and OnBuild come from the image. An ENTRYPOINT given in the request
 * keeps the container's CMD from leaking in.
 */
export function mergeCommitConfig(user: ContainerConfig, ctr: CommitSource['Config'], image: ContainerConfig): ContainerConfig {
  const out: ContainerConfig = { ...image };
  const pick = <K extends keyof ContainerConfig>(k: K, v: ContainerConfig[K] | undefined | null) => {
    if (v !== undefined && v !== null && !(Array.isArray(v) && !v.length) && !(typeof v === 'object' && !Array.isArray(v) && !Object.keys(v).length) && v !== '') out[k] = v as ContainerConfig[K];
  };
  pick('User', ctr.User);
  pick('WorkingDir', ctr.WorkingDir);
  pick('StopSignal', ctr.StopSignal);
  pick('Env', ctr.Env ?? undefined);
  pick('Labels', ctr.Labels ?? undefined);
  pick('ExposedPorts', ctr.ExposedPorts);
  pick('Volumes', ctr.Volumes ?? undefined);
  // User-given values on top.
  if (user.User) out.User = user.User;
  if (user.WorkingDir) out.WorkingDir = user.WorkingDir;
  if (user.StopSignal) out.StopSignal = user.StopSignal;
  if (user.Env?.length) {
    const env = [...(out.Env ?? [])];
    for (const e of user.Env) {
      const k = e.split('=')[0];
      const i = env.findIndex((x) => x.split('=')[0] === k);
      if (i >= 0) env[i] = e;
      else env.push(e);
    }
    out.Env = env;
  }
  if (user.Labels) out.Labels = { ...(out.Labels ?? {}), ...user.Labels };
  if (user.ExposedPorts) out.ExposedPorts = { ...(out.ExposedPorts ?? {}), ...user.ExposedPorts };
  if (user.Volumes) out.Volumes = { ...(out.Volumes ?? {}), ...user.Volumes };
  if (user.Entrypoint?.length) {
    out.Entrypoint = user.Entrypoint;
    out.Cmd = user.Cmd ?? null;
  } else {
    out.Entrypoint = user.Entrypoint === undefined ? (ctr.Entrypoint?.length ? ctr.Entrypoint : (image.Entrypoint ?? null)) : null;
    out.Cmd = user.Cmd?.length ? user.Cmd : (ctr.Cmd?.length ? ctr.Cmd : (image.Cmd ?? null));
  }
  return out;
}
