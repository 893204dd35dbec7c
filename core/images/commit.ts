/**
 * `commit`: a container's changes become a new image layer on top of its image. The storage
 * driver's diff (an OCI layer tar) goes into the content store compressed (store-layer.ts); the
 * config gets the diff ID, a history row and the `-c` changes (config-changes.ts); the manifest
 * keeps the media types of the base image (manifest-build.ts); the layer is applied to the storage
 * driver under its chain ID so the image runs at once; the record and the tag are written last
 * (record-image.ts).
 */
import type { ContainerConfig, HistoryEntry, ImageConfig } from '../contracts/types';
import { BerthError, NotFoundError } from '../contracts/errors';
import type { StorageDriver } from '../contracts/storage';
import type { ContentStore } from '../content/store';
import { applyChanges } from './config-changes';
import { formatOf } from './manifest-build';
import type { LayerUnpacker } from './pull';
import { recordImage, repoTag } from './record-image';
import type { ImageService } from './service';
import type { ImageRecord } from './store';
import { storeLayer } from './store-layer';

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
    out.Cmd = user.Cmd?.length ? user.Cmd : ctr.Cmd?.length ? ctr.Cmd : (image.Cmd ?? null);
  }
  return out;
}
