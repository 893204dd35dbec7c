/**
 * `build`: a Dockerfile and its context become an image, step by step, the way Docker's classic
 * builder does it. Every step starts from the previous step's image and ends in a new one:
 * - metadata steps (ENV, LABEL, CMD, USER ...) change only the config and add an
 *   `empty_layer: true` history row (instructions/metadata.ts);
 * - RUN runs a real container and commits the container's diff as a layer (instructions/run.ts);
 * - COPY and ADD write into the mounted rootfs of a throwaway writable layer and commit its diff
 *   (instructions/copy.ts, layers.ts);
 * - WORKDIR creates its directory (a layer) when the image lacks it.
 * The driver (driver.ts) runs the stages and the step loop; the build cache (cache.ts) maps
 * (parent image ID, instruction after substitution, source content hash) to the image a step
 * produced; progress.ts prints Docker's lines. This file is the entry: tags checked, the context
 * unpacked (context.ts), the result tagged.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import type { ImageRef } from '../contracts/types';
import { InvalidArgumentError } from '../contracts/errors';
import { familiarReference, parseReference } from '../images/reference';
import { ensureDir } from '../util/fs';
import { removeTree } from '../layers/util';
import { BuildCache } from './cache';
import { unpackContext } from './context';
import { BuildDriver } from './driver';
import { BuildLayers } from './layers';
import type { BuildOptions, BuildResult, BuilderDeps } from './options';
import { type BuildOutput, BuildProgress } from './progress';

export { BuildError } from './errors';
export type { BuildOptions } from './options';

export class ImageBuilder {
  readonly cache: BuildCache;
  private readonly layers: BuildLayers;
  private staleCleaned: Promise<void> | undefined;

  constructor(private readonly deps: BuilderDeps) {
    this.cache = new BuildCache(deps.root);
    this.layers = new BuildLayers(deps);
  }

  /** Build from a context tar (plain or gzip). Resolves with the image; throws on failure (no tag written). */
  async build(context: Readable, opts: BuildOptions, out: BuildOutput): Promise<BuildResult> {
    // Tags are checked before any work: a typo should not cost a build.
    const tags = (opts.tags ?? []).filter(Boolean).map((t) => {
      let ref: ImageRef;
      try {
        ref = parseReference(t);
      } catch (err) {
        throw new InvalidArgumentError(`invalid tag "${t}": ${(err as Error).message}`);
      }
      if (ref.digest) throw new InvalidArgumentError(`invalid tag "${t}": a tag cannot carry a digest`);
      return ref;
    });
    const tmpRoot = path.join(this.deps.root, 'build-tmp');
    // Contexts left by a daemon that died mid-build: removed once, before the first build.
    await (this.staleCleaned ??= removeTree(tmpRoot));
    await ensureDir(tmpRoot);
    const ctxDir = await fs.mkdtemp(path.join(tmpRoot, 'ctx-'));
    try {
      const { dockerfile, ignore } = await unpackContext(context, ctxDir, opts.dockerfile);
      const progress = new BuildProgress(out);
      const id = await new BuildDriver(this.deps, this.layers, this.cache, progress, dockerfile, ctxDir, ignore, opts).execute();
      const tagged: string[] = [];
      for (const ref of tags) {
        await this.deps.images.store.tag(id, ref);
        this.deps.images.onEvent('tag', id, familiarReference(ref));
        tagged.push(familiarReference(ref));
      }
      progress.built(id, tagged);
      return { id, tags: tagged };
    } finally {
      await removeTree(ctxDir);
    }
  }
}
