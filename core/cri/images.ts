/**
 * The CRI ImageService on berth's own image store: images pulled through the CRI and through the
 * Docker API are the same records. The CRI names them by full references
 * (`docker.io/library/busybox:latest`, `docker.io/library/busybox@sha256:...`) and by image ID.
 */
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import type { RegistryCredentials } from '../contracts/registry';
import { InvalidArgumentError } from '../contracts/errors';
import type { Engine } from '../kernel/engine';
import { formatReference, parseReference } from '../images/reference';
import type { ImageRecord } from '../images/store';
import { nanos } from './labels';

/** berth's own pod sandbox image (berth-pause in one layer), made at the first pod start. */
export const PAUSE_REPO = 'berth.local/pause';

/** Where the image layers are: the storage plugin's state directory (`<root>/plugins/<uri>`), else the root. */
function imageFsDir(engine: Engine): string {
  const uri = engine.storage() && engine.plugins.uriOf(engine.storage());
  const dir = uri ? path.join(engine.config.root, 'plugins', uri) : engine.config.root;
  return existsSync(dir) ? dir : engine.config.root;
}

/** The CRI `Image` message of one record. */
export async function criImage(engine: Engine, rec: ImageRecord) {
  const cfg = await engine.images.config(rec);
  const tags = engine.imageStore.tagsOf(rec.id);
  const user = cfg.config?.User ?? '';
  const [name] = user.split(':');
  const numeric = /^\d+$/.test(name);
  return {
    id: rec.id,
    repo_tags: tags,
    repo_digests: rec.repoDigests.map((d) => formatReference(parseReference(d))),
    size: rec.size,
    // The CRI's rule: a numeric user is a uid, anything else a name (kubelet's runAsNonRoot check).
    ...(numeric ? { uid: { value: Number(name) } } : {}),
    username: numeric ? '' : name,
    spec: { image: rec.id },
    // As containerd pins its sandbox image: kubelet's image garbage collection leaves it alone.
    pinned: tags.some((t) => t.startsWith(`${PAUSE_REPO}:`)),
  };
}

/** An ImageSpec's image: an ID, a tag or a digest reference. Undefined when there is none. */
export function findImage(engine: Engine, image: string | undefined): ImageRecord | undefined {
  if (!image) throw new InvalidArgumentError('image: an image reference or ID is required');
  return engine.imageStore.find(image);
}

/** AuthConfig -> berth's credentials; `auth` is base64 of `user:password`, as in docker's config. */
export function credentialsOf(auth: { username?: string; password?: string; auth?: string; identity_token?: string; registry_token?: string } | null | undefined): RegistryCredentials | undefined {
  if (!auth) return undefined;
  let { username, password } = auth;
  if (auth.auth && !username) {
    const decoded = Buffer.from(auth.auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) throw new InvalidArgumentError('auth.auth: expected base64 of "username:password"');
    username = decoded.slice(0, colon);
    password = decoded.slice(colon + 1);
  }
  const creds: RegistryCredentials = {
    username: username || undefined,
    password: password || undefined,
    identitytoken: auth.identity_token || undefined,
    registrytoken: auth.registry_token || undefined,
  };
  return Object.values(creds).some(Boolean) ? creds : undefined;
}

export function imageHandlers(engine: Engine) {
  return {
    async ListImages(req: { filter?: { image?: { image?: string } } }) {
      const wanted = req.filter?.image?.image;
      const records = wanted ? [findImage(engine, wanted)].filter((r): r is ImageRecord => !!r) : engine.imageStore.list();
      return { images: await Promise.all(records.map((r) => criImage(engine, r))) };
    },

    async ImageStatus(req: { image?: { image?: string }; verbose?: boolean }) {
      const rec = findImage(engine, req.image?.image);
      // A missing image is an empty answer, not an error (kubelet pulls then).
      if (!rec) return {};
      const info: Record<string, string> = {};
      if (req.verbose) {
        const cfg = await engine.images.config(rec);
        info.info = JSON.stringify({ imageSpec: cfg, chainIDs: rec.chainIds, manifestDigest: rec.manifestDigest ?? '' });
      }
      return { image: await criImage(engine, rec), info };
    },

    async PullImage(req: { image?: { image?: string }; auth?: Parameters<typeof credentialsOf>[0] }) {
      const name = req.image?.image;
      if (!name) throw new InvalidArgumentError('image.image: an image reference is required');
      const rec = await engine.images.pull(name, { credentials: credentialsOf(req.auth) });
      return { image_ref: rec.id };
    },

    async RemoveImage(req: { image?: { image?: string } }) {
      const rec = findImage(engine, req.image?.image);
      if (!rec) return {}; // idempotent, as the CRI asks
      await engine.images.remove(rec.id, { force: true });
      return {};
    },

    async ImageFsInfo() {
      const storage = engine.storage();
      const usage = storage ? await storage.usage() : { layers: {} as Record<string, number> };
      const used = Object.values(usage.layers).reduce((a, b) => a + b, 0);
      return {
        image_filesystems: [
          {
            timestamp: nanos(Date.now()),
            // A directory that exists (kubelet asks cAdvisor for its filesystem's capacity): the
            // storage driver's state directory, where the layers are, else berth's root.
            fs_id: { mountpoint: imageFsDir(engine) },
            used_bytes: { value: used },
            inodes_used: { value: 0 },
          },
        ],
      };
    },
  };
}
