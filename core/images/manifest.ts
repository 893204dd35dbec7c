/**
 * Manifest parsing: OCI manifest and index, Docker schema2 manifest and manifest list. Schema1
 * is refused with a clear message. Platform selection follows containerd: exact os/arch, then
 * variant (arm64 -> v8 by default), never an `unknown/unknown` attestation entry.
 */
import * as os from 'node:os';
import type { Descriptor, Platform } from '../contracts/types';
import { MediaTypes } from '../contracts/types';
import { BerthError, InvalidArgumentError, NotFoundError } from '../contracts/errors';

export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

export interface ImageManifest {
  kind: 'manifest';
  mediaType: string;
  config: Descriptor;
  layers: Descriptor[];
}

export interface ImageIndex {
  kind: 'index';
  mediaType: string;
  manifests: Descriptor[];
}

const LAYER_TYPES = new Set<string>([
  MediaTypes.ociLayer,
  MediaTypes.ociLayerGzip,
  MediaTypes.ociLayerZstd,
  MediaTypes.ociLayerNondistGzip,
  MediaTypes.dockerLayerGzip,
  MediaTypes.dockerForeignLayerGzip,
  'application/vnd.oci.image.layer.nondistributable.v1.tar',
  'application/vnd.docker.image.rootfs.diff.tar',
]);

export function isIndexMediaType(mt: string): boolean {
  return mt === MediaTypes.ociIndex || mt === MediaTypes.dockerManifestList;
}

/** Parse a manifest or index. `what` names the reference in errors. */
export function parseManifest(bytes: Buffer, servedMediaType: string, what: string): ImageManifest | ImageIndex {
  if (bytes.length > MAX_MANIFEST_BYTES) throw new InvalidArgumentError(`manifest for ${what} is larger than ${MAX_MANIFEST_BYTES} bytes`);
  let doc: any;
  try {
    doc = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new BerthError(`manifest for ${what} is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof doc !== 'object' || doc === null) throw new BerthError(`manifest for ${what} is not a JSON object`);
  const served = servedMediaType.split(';')[0].trim();
  const mediaType: string = doc.mediaType || served;
  if (doc.schemaVersion === 1 || mediaType === MediaTypes.dockerSchema1 || mediaType === MediaTypes.dockerSchema1Signed) {
    throw new InvalidArgumentError(
      `${what} uses a Docker schema 1 manifest, which berth does not support (it was removed from Docker too); push the image again with a current docker, podman or skopeo`,
    );
  }
  if (doc.schemaVersion !== 2) throw new BerthError(`manifest for ${what} has unsupported schemaVersion ${doc.schemaVersion}`);
  if (Array.isArray(doc.manifests) || isIndexMediaType(mediaType)) {
    if (!Array.isArray(doc.manifests)) throw new BerthError(`index for ${what} has no manifests list`);
    return { kind: 'index', mediaType, manifests: doc.manifests.map((d: unknown, i: number) => descriptor(d, `${what} manifests[${i}]`)) };
  }
  if (!doc.config) throw new BerthError(`manifest for ${what} has no config`);
  if (doc.layers !== undefined && !Array.isArray(doc.layers)) throw new BerthError(`manifest for ${what}: layers is not a list`);
  const layers: Descriptor[] = (doc.layers ?? []).map((d: unknown, i: number) => descriptor(d, `${what} layers[${i}]`));
  for (const l of layers) {
    if (!LAYER_TYPES.has(l.mediaType)) throw new BerthError(`${what}: layer ${l.digest} has unsupported media type ${l.mediaType}`);
  }
  return { kind: 'manifest', mediaType: mediaType || MediaTypes.ociManifest, config: descriptor(doc.config, `${what} config`), layers };
}

function descriptor(d: any, what: string): Descriptor {
  if (!d || typeof d !== 'object') throw new BerthError(`${what}: not a descriptor`);
  if (typeof d.digest !== 'string' || !/^sha256:[a-f0-9]{64}$/.test(d.digest)) throw new BerthError(`${what}: unsupported or invalid digest ${JSON.stringify(d.digest)}`);
  if (!Number.isSafeInteger(d.size) || d.size < 0) throw new BerthError(`${what}: invalid size ${JSON.stringify(d.size)}`);
  return d as Descriptor;
}

const ARCH: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' };

export function hostPlatform(): Platform {
  return { os: 'linux', architecture: ARCH[os.arch()] ?? os.arch() };
}

/** Parse `os/arch[/variant]` as given to --platform. */
export function parsePlatform(s: string): Platform {
  const parts = s.trim().toLowerCase().split('/');
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => !p)) {
    throw new InvalidArgumentError(`invalid platform "${s}": expected os/arch[/variant], e.g. linux/amd64`);
  }
  const arch = parts[1] === 'x86_64' ? 'amd64' : parts[1] === 'aarch64' ? 'arm64' : parts[1];
  return { os: parts[0], architecture: arch, variant: parts[2] };
}

export function formatPlatform(p: Platform): string {
  return [p.os, p.architecture, p.variant].filter(Boolean).join('/');
}

/** Pick the manifest for `want` from an index; throws NotFoundError listing what the index has. */
export function selectPlatform(index: ImageIndex, want: Platform, what: string): Descriptor {
  const candidates = index.manifests.filter((m) => m.platform && m.platform.os !== 'unknown' && m.platform.architecture !== 'unknown' && !isIndexMediaType(m.mediaType));
  const matches = candidates.filter((m) => m.platform!.os === want.os && m.platform!.architecture === want.architecture);
  const defaultVariant = want.architecture === 'arm64' ? 'v8' : undefined;
  const wantVariant = want.variant ?? defaultVariant;
  const exact = matches.find((m) => (m.platform!.variant ?? defaultVariant) === wantVariant);
  const chosen = exact ?? (want.variant ? undefined : matches[0]);
  if (!chosen) {
    const have = candidates.map((m) => formatPlatform(m.platform!)).join(', ') || 'none';
    throw new NotFoundError(`no matching manifest for ${formatPlatform(want)} in the manifest list entries of ${what} (available: ${have})`);
  }
  return chosen;
}
