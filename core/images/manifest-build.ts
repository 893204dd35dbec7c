/**
 * Writing an image manifest for a config and its layers. The manifest keeps the media types of the
 * base image: Docker schema2 stays schema2, everything else is OCI.
 */
import type { Descriptor } from '../contracts/types';
import { MediaTypes } from '../contracts/types';
import type { ImageRecord } from './store';

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
