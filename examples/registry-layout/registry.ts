import { createReadStream, promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import { NotFoundError, type Descriptor, type FetchedManifest, type ImageRef, type Registry } from 'berth/plugin';

export interface LayoutConfig {
  /** Folder holding one OCI image layout per image name (`<dir>/busybox/index.json`). */
  dir: string;
  /** The host part that selects this registry in a reference (default `layout.local`). */
  host: string;
}

const REF_NAME = 'org.opencontainers.image.ref.name';
const DIGEST = /^sha256:[a-f0-9]{64}$/;

interface LayoutIndex {
  manifests?: (Descriptor & { annotations?: Record<string, string> })[];
}

export class LayoutRegistry implements Registry {
  constructor(private readonly config: LayoutConfig) {}

  claims(ref: ImageRef): boolean {
    return ref.domain === this.config.host;
  }

  /** `<dir>/<repository path>`, refusing anything that would step outside `dir`. */
  private layoutDir(ref: ImageRef): string {
    const dir = path.resolve(this.config.dir, ref.path);
    if (!dir.startsWith(path.resolve(this.config.dir) + path.sep)) throw new NotFoundError(`layout: repository ${ref.path} is outside ${this.config.dir}`);
    return dir;
  }

  private blobPath(ref: ImageRef, digest: string): string {
    if (!DIGEST.test(digest)) throw new NotFoundError(`layout: unsupported digest ${JSON.stringify(digest)} (sha256 only)`);
    return path.join(this.layoutDir(ref), 'blobs', 'sha256', digest.slice('sha256:'.length));
  }

  async getManifest(ref: ImageRef, reference: string): Promise<FetchedManifest> {
    const where = `${ref.domain}/${ref.path}:${reference}`;
    const indexFile = path.join(this.layoutDir(ref), 'index.json');
    let index: LayoutIndex;
    try {
      index = JSON.parse(await fs.readFile(indexFile, 'utf8')) as LayoutIndex;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new NotFoundError(`manifest unknown: no OCI layout for ${where} (${indexFile} is missing)`);
      throw new Error(`layout: cannot read ${indexFile}: ${(err as Error).message}`);
    }
    const entries = index.manifests ?? [];
    const desc = DIGEST.test(reference) ? (entries.find((m) => m.digest === reference) ?? { digest: reference, mediaType: '' }) : entries.find((m) => m.annotations?.[REF_NAME] === reference);
    if (!desc) {
      const tags = entries.map((m) => m.annotations?.[REF_NAME]).filter(Boolean);
      throw new NotFoundError(`manifest unknown: ${where} (tags in ${indexFile}: ${tags.join(', ') || 'none'})`);
    }
    let bytes: Buffer;
    try {
      bytes = await fs.readFile(this.blobPath(ref, desc.digest));
    } catch {
      throw new NotFoundError(`manifest unknown: ${where}: blob ${desc.digest} is missing from the layout`);
    }
    // The core verifies the digest; the media type comes from the index or the manifest itself.
    const mediaType = desc.mediaType || (JSON.parse(bytes.toString('utf8')) as { mediaType?: string }).mediaType || 'application/vnd.oci.image.manifest.v1+json';
    return { bytes, mediaType };
  }

  async getBlob(ref: ImageRef, desc: Descriptor): Promise<Readable> {
    const file = this.blobPath(ref, desc.digest);
    try {
      await fs.access(file);
    } catch {
      throw new NotFoundError(`blob unknown: ${desc.digest} is not in the layout of ${ref.domain}/${ref.path}`);
    }
    return createReadStream(file);
  }
}
