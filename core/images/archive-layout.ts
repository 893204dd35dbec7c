/** Names both image archive formats use (OCI layout annotations, blob paths), for save and load alike. */
export const REF_NAME = 'org.opencontainers.image.ref.name';
export const CONTAINERD_NAME = 'io.containerd.image.name';
export const blobPath = (digest: string) => `blobs/sha256/${digest.slice('sha256:'.length)}`;
