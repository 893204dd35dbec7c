/**
 * One build, step by step, the way Docker's classic builder does it: the stages up to the target
 * in order, each from its base (an image, an earlier stage or scratch), the base's ONBUILD
 * triggers first, then every instruction through its handler (instructions/). Every step starts
 * from the previous step's image and goes through `commit`: a cache hit moves the stage to the
 * cached image; otherwise the step runs and its result is recorded. Layers are gzip-stored and
 * applied under their chain IDs (images/store-layer.ts, record-image.ts), so each step's image
 * is a real, runnable image.
 */
import type { Descriptor, HistoryEntry, ImageConfig } from '../contracts/types';
import type { RegistryCredentials } from '../contracts/registry';
import { CanceledError, InvalidArgumentError, NotFoundError } from '../contracts/errors';
import { type ImageRecord, MAX_CONFIG_BYTES, checkConfigSize } from '../images/store';
import { formatOf } from '../images/manifest-build';
import { recordImage } from '../images/record-image';
import { hostPlatform } from '../images/manifest';
import { parseReference } from '../images/reference';
import { type ArgValues, baseName, metaArgValues, stageLookup } from './args';
import { BuildCache, BuildCacheView, exactKey, seenKey } from './cache';
import { type Dockerfile, type Instruction, type Stage, DockerfileError, parseInstructionLine } from './dockerfile';
import { BuildError } from './errors';
import type { IgnoreMatcher } from './ignore';
import { copyStep } from './instructions/copy';
import { metadataStep, workdirStep } from './instructions/metadata';
import { runStep } from './instructions/run';
import type { BuildLayers } from './layers';
import type { BuildOptions, BuilderDeps } from './options';
import type { BuildProgress } from './progress';
import type { SourceTree } from './sources';
import type { StageState, StepContext, StepResult } from './step';
import type { Lookup } from './words';

const DEFAULT_PATH_ENV = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
/** Build args Docker always accepts without a warning. */
const BUILTIN_ARGS = ['HTTP_PROXY', 'http_proxy', 'HTTPS_PROXY', 'https_proxy', 'FTP_PROXY', 'ftp_proxy', 'NO_PROXY', 'no_proxy', 'ALL_PROXY', 'all_proxy'];

/** One build: the parsed Dockerfile, its context and the state of every stage. */
export class BuildDriver implements StepContext {
  readonly metaArgs: ArgValues = new Map();
  readonly buildArgs: Map<string, string>;
  readonly consumedArgs = new Set<string>();
  readonly stageResults: StageState[] = [];
  readonly contextTree: SourceTree;
  private readonly cache: BuildCacheView;

  constructor(
    readonly deps: BuilderDeps,
    readonly layers: BuildLayers,
    cache: BuildCache,
    readonly progress: BuildProgress,
    readonly dockerfile: Dockerfile,
    ctxDir: string,
    ignore: IgnoreMatcher,
    readonly opts: BuildOptions,
  ) {
    this.buildArgs = new Map(Object.entries(opts.buildArgs ?? {}).filter((e): e is [string, string] => typeof e[1] === 'string'));
    this.contextTree = { root: ctxDir, ignore, confined: true, what: 'build context' };
    this.cache = new BuildCacheView(cache, deps.images.store, opts);
  }

  /** Build the stages up to the target; resolves with the ID of the target stage's image. */
  async execute(): Promise<string> {
    const stages = this.dockerfile.stages;
    let targetIndex = stages.length - 1;
    if (this.opts.target) {
      const want = this.opts.target.toLowerCase();
      const found = stages.find((s) => s.name === want);
      if (!found) throw new InvalidArgumentError(`failed to reach build target ${this.opts.target} in Dockerfile`);
      targetIndex = found.index;
    }
    // ARGs before the first FROM: visible to FROM lines (and to stages that declare them again).
    for (const [k, v] of metaArgValues(this.dockerfile, this.buildArgs, this.consumedArgs)) this.metaArgs.set(k, v);
    const labelStep = Object.keys(this.opts.labels ?? {}).length ? 1 : 0;
    this.progress.totalSteps = stages.slice(0, targetIndex + 1).reduce((n, s) => n + 1 + s.instructions.length, 0) + labelStep;

    let state: StageState | undefined;
    for (const stage of stages.slice(0, targetIndex + 1)) {
      this.checkAborted();
      state = await this.buildStage(stage, stage.index === targetIndex && labelStep > 0);
      this.stageResults[stage.index] = state;
    }
    if (!state!.imageId) state!.imageId = await this.materialize(state!);
    const unused = [...this.buildArgs.keys()].filter((k) => !this.consumedArgs.has(k) && !BUILTIN_ARGS.includes(k));
    if (unused.length) this.progress.unusedArgs(unused);
    return state!.imageId;
  }

  private checkAborted(): void {
    if (this.opts.signal?.aborted) throw new CanceledError('build cancelled: the client went away');
  }

  // ---- stages -------------------------------------------------------------------------------

  private async buildStage(stage: Stage, addLabels: boolean): Promise<StageState> {
    this.progress.stepLine(stage.from);
    const state = await this.from(stage);
    this.progress.image(state.imageId);
    // ONBUILD triggers of the base image run first, as Docker does; the new image keeps none.
    const triggers = state.config.config?.OnBuild ?? [];
    if (triggers.length) {
      this.progress.triggers(triggers.length);
      for (const t of triggers) {
        const ins = parseInstructionLine(t, stage.from.line, this.dockerfile.escape, 'ONBUILD trigger');
        await this.dispatch(state, ins, stage);
      }
    }
    let onbuildCleared = !triggers.length;
    for (const ins of stage.instructions) {
      this.checkAborted();
      this.progress.stepLine(ins);
      if (!onbuildCleared) {
        // The first step after the triggers drops them from the config (the key says so too).
        state.config = { ...state.config, config: { ...(state.config.config ?? {}), OnBuild: null } };
        onbuildCleared = true;
      }
      await this.dispatch(state, ins, stage);
    }
    if (addLabels) {
      const labels = Object.entries(this.opts.labels!)
        .map(([k, v]) => `${JSON.stringify(k)}=${JSON.stringify(v)}`)
        .join(' ');
      const ins = parseInstructionLine(`LABEL ${labels}`, stage.from.line, this.dockerfile.escape, 'build labels');
      this.progress.stepLine(ins);
      await this.dispatch(state, ins, stage);
    }
    return state;
  }

  private async from(stage: Stage): Promise<StageState> {
    const name = baseName(stage, this.metaArgs, this.dockerfile.escape);
    const fresh = (s: Pick<StageState, 'imageId' | 'config' | 'layers' | 'format'>): StageState => ({
      ...s,
      parentId: s.imageId,
      cacheKey: s.imageId ?? 'scratch',
      pendingKeys: [],
      configGrowth: 0,
      args: new Map(),
      cmdSet: false,
    });
    if (name.toLowerCase() === 'scratch') {
      const platform = hostPlatform();
      return fresh({
        config: { architecture: platform.architecture, os: platform.os, config: { Env: [DEFAULT_PATH_ENV] }, rootfs: { type: 'layers', diff_ids: [] }, history: [] },
        layers: [],
        format: 'oci',
      });
    }
    const earlier = this.stageResults.findIndex((s, i) => s && this.dockerfile.stages[i].name === name.toLowerCase());
    if (earlier >= 0) {
      const s = this.stageResults[earlier];
      if (!s.imageId) s.imageId = await this.materialize(s);
      return fresh({ imageId: s.imageId, config: structuredClone(s.config), layers: [...s.layers], format: s.format });
    }
    const rec = await this.image(name);
    const config = await this.deps.images.config(rec);
    const env = config.config?.Env ?? [];
    const withPath = env.some((e) => e.startsWith('PATH=')) ? env : [...env, DEFAULT_PATH_ENV];
    // Keep history aligned with the layers: a base without history gets one row per layer.
    const history: HistoryEntry[] = config.history?.length ? config.history : rec.diffIds.map(() => ({ created: config.created }));
    return fresh({ imageId: rec.id, config: { ...config, config: { ...(config.config ?? {}), Env: withPath }, history }, layers: rec.layers, format: formatOf(rec) });
  }

  async image(name: string): Promise<ImageRecord> {
    let rec = this.opts.pull ? undefined : this.deps.images.store.find(name);
    if (!rec) {
      try {
        rec = await this.deps.images.pull(name, {
          credentials: credentialsFor(this.opts.registryConfig, name),
          signal: this.opts.signal,
          progress: (e) => this.progress.pull(e),
        });
      } catch (err) {
        if (err instanceof NotFoundError) throw new BuildError(`pull access denied or image not found: ${name}: ${err.message}`);
        throw err;
      }
    }
    await this.layers.ensureUnpacked(rec);
    return rec;
  }

  // ---- steps --------------------------------------------------------------------------------

  /** ENV wins over ARG of the same name (Docker's rule). */
  private lookup(state: StageState): Lookup {
    const lookup = stageLookup(state.config.config?.Env ?? [], state.args);
    // Substitution can double a value per line (ENV A=$A$A): bound what one instruction expands to.
    let substituted = 0;
    return (name) => {
      const value = lookup(name);
      substituted += value?.length ?? 0;
      if (substituted > MAX_CONFIG_BYTES) throw new BuildError(`variable substitution passed the ${MAX_CONFIG_BYTES / (1024 * 1024)} MiB limit (${MAX_CONFIG_BYTES} bytes) in one instruction`);
      return value;
    };
  }

  private async dispatch(state: StageState, ins: Instruction, stage: Stage): Promise<void> {
    const lookup = this.lookup(state);
    switch (ins.name) {
      case 'RUN':
        return runStep(this, state, ins);
      case 'COPY':
      case 'ADD':
        return copyStep(this, state, ins, stage, lookup);
      case 'WORKDIR':
        return workdirStep(this, state, ins, lookup);
      case 'FROM':
        throw new DockerfileError(this.dockerfile.file, ins.line, 'FROM is not allowed as an ONBUILD trigger');
      default:
        return metadataStep(this, state, ins, lookup);
    }
  }

  /**
   * A step that adds a layer is recorded as an image; a metadata step only changes the config,
   * so a Dockerfile of many ENV lines makes one image at the end (or before the next RUN), not
   * one per line.
   */
  async commit(state: StageState, parts: string[], produce: () => Promise<StepResult>): Promise<void> {
    const key = BuildCache.key([state.cacheKey, state.config.config?.OnBuild?.length ? 'onbuild' : '', ...parts]);
    const cached = await this.cache.image(key);
    if (cached) {
      await this.layers.ensureUnpacked(cached);
      await this.moveTo(state, cached);
      this.progress.usingCache();
      this.progress.image(cached.id);
      return;
    }
    const result = await produce();
    state.configGrowth += Buffer.byteLength(result.createdBy) * 2;
    if (state.configGrowth > MAX_CONFIG_BYTES) {
      throw new BuildError(`${parts[0].split(' ')[0]}: the image config would pass the ${MAX_CONFIG_BYTES / (1024 * 1024)} MiB limit (${MAX_CONFIG_BYTES} bytes)`);
    }
    const now = new Date().toISOString();
    const entry: HistoryEntry = { created: now, created_by: result.createdBy };
    if (!result.layer) entry.empty_layer = true;
    const config: ImageConfig = {
      ...state.config,
      created: now,
      config: result.containerConfig,
      rootfs: { type: 'layers', diff_ids: [...state.config.rootfs.diff_ids, ...(result.layer ? [result.layer.diffId] : [])] },
      history: [...(state.config.history ?? []), entry],
    };
    if (result.author !== undefined) config.author = result.author;
    if (!result.layer) {
      state.imageId = undefined;
      state.config = config;
      state.cacheKey = key;
      state.pendingKeys.push(key);
      if (await this.cache.image(seenKey(key))) this.progress.usingCache();
      return;
    }
    const rec = await this.record(state, config, [...state.layers, result.layer.blob]);
    await this.cache.record([key, ...state.pendingKeys.map(seenKey)], rec.id);
    state.imageId = rec.id;
    state.parentId = rec.id;
    state.cacheKey = rec.id;
    state.pendingKeys = [];
    state.config = config;
    state.layers = rec.layers;
    this.progress.image(rec.id);
  }

  private async moveTo(state: StageState, rec: ImageRecord): Promise<void> {
    state.imageId = rec.id;
    state.parentId = rec.id;
    state.cacheKey = rec.id;
    state.pendingKeys = [];
    state.config = await this.deps.images.config(rec);
    state.layers = rec.layers;
    state.format = formatOf(rec);
  }

  /**
   * RUN needs an image for its container and the build's result is one. Metadata steps seen
   * before end in the image they made then, so an unchanged rebuild ends in the same image ID.
   */
  async materialize(state: StageState): Promise<string> {
    if (state.imageId) return state.imageId;
    const pending = state.pendingKeys;
    const cached = pending.length ? await this.cache.image(exactKey(state.cacheKey)) : undefined;
    if (cached) {
      // Later steps key on the metadata chain, as they did when this image was made.
      const chain = state.cacheKey;
      await this.moveTo(state, cached);
      state.cacheKey = chain;
      return cached.id;
    }
    const rec = await this.record(state, { ...state.config, created: new Date().toISOString() }, state.layers);
    if (pending.length) await this.cache.record([...pending.map(seenKey), exactKey(state.cacheKey)], rec.id);
    state.imageId = rec.id;
    state.parentId = rec.id;
    state.pendingKeys = [];
    return rec.id;
  }

  /** Record an image of this build, refusing a config over MAX_CONFIG_BYTES. */
  private async record(state: StageState, config: ImageConfig, layers: Descriptor[]): Promise<ImageRecord> {
    const configBytes = Buffer.from(JSON.stringify(config));
    checkConfigSize(configBytes.length, this.opts.tags?.filter(Boolean).join(', ') || 'the image being built');
    return recordImage(this.deps, { config, configBytes, layers, format: state.format, tags: [], parent: state.parentId });
  }
}

/** The X-Registry-Config entry for an image's registry (Docker Hub has a few spellings). */
function credentialsFor(config: Record<string, RegistryCredentials> | undefined, name: string): RegistryCredentials | undefined {
  if (!config) return undefined;
  let domain: string;
  try {
    domain = parseReference(name).domain;
  } catch {
    return undefined;
  }
  const keys = domain === 'docker.io' ? ['docker.io', 'index.docker.io', 'https://index.docker.io/v1/', 'registry-1.docker.io'] : [domain, `https://${domain}`, `http://${domain}`];
  for (const k of keys) if (config[k]) return config[k];
  return undefined;
}
