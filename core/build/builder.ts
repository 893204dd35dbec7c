/**
 * `build`: a Dockerfile and its context become an image, step by step, the way Docker's classic
 * builder does it. Every step starts from the previous step's image and ends in a new one:
 * - metadata steps (ENV, LABEL, CMD, USER ...) change only the config and add an
 *   `empty_layer: true` history row;
 * - RUN runs a real container (create/start/wait of the container manager, with the step's env,
 *   workdir, user and SHELL), streams its output, and commits the container's diff as a layer;
 * - COPY and ADD write into the mounted rootfs of a throwaway writable layer (storage driver
 *   create/mount, no container record) and commit its diff. Writing into a real rootfs rather
 *   than crafting a tar lets the destination be resolved the way it will be seen at run time
 *   (an existing directory, a symlinked parent, `--chown` names from the image's own
 *   /etc/passwd), always inside the rootfs (core/layers/resolve.ts);
 * - WORKDIR creates its directory (a layer) when the image lacks it.
 * Layers are gzip-stored and applied under their chain IDs (commit.ts storeLayer/recordImage),
 * so each step's image is a real, runnable image. The build cache maps (parent image ID,
 * instruction after substitution, source content hash) to the image a step produced.
 */
import { randomBytes } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import * as path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { peekStream } from '../util/stream';
import zlib from 'node:zlib';
import * as tar from 'tar-stream';
import type { ContainerConfig, Descriptor, HistoryEntry, ImageConfig, ImageRef, Logger } from '../contracts/types';
import type { RegistryCredentials } from '../contracts/registry';
import type { StorageDriver } from '../contracts/storage';
import { BerthError, CanceledError, InvalidArgumentError, NotFoundError } from '../contracts/errors';
import type { ContentStore } from '../content/store';
import type { ImageService } from '../images/service';
import { type ImageRecord, MAX_CONFIG_BYTES, chainIds, checkConfigSize } from '../images/store';
import type { LayerUnpacker } from '../images/pull';
import { applyChanges } from '../images/config-changes';
import { type ManifestFormat, formatOf } from '../images/manifest-build';
import { recordImage } from '../images/record-image';
import { type StoredLayer, storeLayer } from '../images/store-layer';
import { decompressIfNeeded } from '../images/import';
import { hostPlatform } from '../images/manifest';
import { familiarReference, parseReference } from '../images/reference';
import { progressMessage } from '../util/progress';
import type { ContainerManager } from '../containers/manager';
import { readLogs } from '../containers/logs';
import { resolveUser } from '../containers/user';
import { ensureDir } from '../util/fs';
import { removeTree } from '../layers/util';
import { BuildCache } from './cache';
import {
  type CopySource,
  type Owner,
  type SourceTree,
  CopyError,
  archiveKind,
  extractTar,
  hashSources,
  isDirInRoot,
  mkdirInRoot,
  readContextFile,
  resolveSources,
  writeItem,
} from './context';
import { type Dockerfile, type Instruction, type Stage, DockerfileError, checkDockerfileSize, parseDockerfile, parseInstructionLine } from './dockerfile';
import { IgnoreMatcher } from './ignore';
import { baseName, declareArgs, envValue, metaArgValues, stageLookup } from './args';
import { type Lookup, keyValuePairs, processWord, processWords } from './words';

export const DEFAULT_PATH_ENV = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const DEFAULT_SHELL = ['/bin/sh', '-c'];
/** Mount points the launcher makes in a container's writable layer; not part of a RUN's layer. */
const INIT_PATHS = ['/dev', '/proc', '/sys', '/etc/hostname', '/etc/hosts', '/etc/resolv.conf'];
/** Build args Docker always accepts without a warning. */
const BUILTIN_ARGS = ['HTTP_PROXY', 'http_proxy', 'HTTPS_PROXY', 'https_proxy', 'FTP_PROXY', 'ftp_proxy', 'NO_PROXY', 'no_proxy', 'ALL_PROXY', 'all_proxy'];

export interface BuildOptions {
  /** Path of the Dockerfile inside the context (default `Dockerfile`). */
  dockerfile?: string;
  tags?: string[];
  buildArgs?: Record<string, string | null | undefined>;
  noCache?: boolean;
  target?: string;
  labels?: Record<string, string>;
  /** Remove intermediate containers after a successful step (default true). */
  rm?: boolean;
  /** Remove intermediate containers also after a failed step. */
  forceRm?: boolean;
  /** Pull base images even when present. */
  pull?: boolean;
  /** Registry credentials by host (Docker's X-Registry-Config), for pulling base images. */
  registryConfig?: Record<string, RegistryCredentials>;
  /** `host:ip` entries added to RUN containers' /etc/hosts (`--add-host`). */
  extraHosts?: string[];
  /** The network RUN containers join (`--network`: bridge, host, none or a network's name or id). */
  networkMode?: string;
  /**
   * Images whose build steps may serve as cache (`--cache-from`): when given, only steps that are
   * one of these images or their parents are cache hits, as dockerd's classic builder does.
   */
  cacheFrom?: string[];
  signal?: AbortSignal;
}

/** Where the build's messages go (the API turns them into Docker's JSON messages). */
export interface BuildOutput {
  /** `{"stream": text}`: step lines and RUN output. */
  stream(text: string): void;
  /** Any other message (pull progress, aux). */
  raw(msg: Record<string, unknown>): void;
}

export interface BuildResult {
  id: string;
  tags: string[];
}

/** A build failure in Docker's words; `code` is the failing RUN's exit code, when there was one. */
export class BuildError extends BerthError {
  constructor(message: string, readonly code?: number) {
    super(message, 400);
  }
}

export interface BuilderDeps {
  root: string;
  content: ContentStore;
  images: ImageService;
  containers: ContainerManager;
  storage: () => StorageDriver | undefined;
  unpacker: () => LayerUnpacker | undefined;
  log: Logger;
}

/** What a stage has built so far. */
interface StageState {
  /**
   * The image the stage stands at; undefined after metadata steps (they change only the config
   * and make no image until one is needed) and for FROM scratch before its first layer.
   */
  imageId?: string;
  /** The last image made or taken for this stage: the parent of the next one. */
  parentId?: string;
  /** What the next step's cache key builds on: the current image, or the last metadata step's key. */
  cacheKey: string;
  /** Keys of the metadata steps since the last image, recorded against the image they end up in. */
  pendingKeys: string[];
  /** Bytes the steps added to the config so far (an upper bound), against MAX_CONFIG_BYTES. */
  configGrowth: number;
  config: ImageConfig;
  layers: Descriptor[];
  format: ManifestFormat;
  /** ARGs declared in this stage and their values (undefined: declared, no value). */
  args: Map<string, string | undefined>;
  /** CMD was set in this stage (ENTRYPOINT then keeps it). */
  cmdSet: boolean;
}

/** What one step produced: a new container config and, for filesystem steps, a layer. */
interface StepResult {
  containerConfig: ContainerConfig;
  author?: string;
  layer?: StoredLayer;
  createdBy: string;
}

const short = (id: string) => id.replace(/^sha256:/, '').slice(0, 12);
/**
 * Metadata steps make no image, so the cache knows them under keys of their own: `seenKey` names
 * an image the step went into (only to report the hit), `exactKey` the image of the stage as it
 * stood right after the step, made when one was needed (a RUN's, the build's result).
 */
const seenKey = (key: string) => BuildCache.key(['seen', key]);
const exactKey = (key: string) => BuildCache.key(['image', key]);

export class ImageBuilder {
  readonly cache: BuildCache;
  private staleCleaned: Promise<void> | undefined;

  constructor(private readonly deps: BuilderDeps) {
    this.cache = new BuildCache(deps.root);
  }

  storage(): StorageDriver {
    const s = this.deps.storage();
    if (!s) throw new BerthError('no storage driver is configured: cannot build');
    return s;
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
      const body = await decompressIfNeeded(context, 'the build context');
      const { head, stream } = await peekStream(body, 512);
      let dockerfileName = opts.dockerfile || 'Dockerfile';
      if (head.length >= 262 && head.subarray(257, 262).toString('latin1') === 'ustar') {
        await extractTar(stream, ctxDir, [], { chown: false, what: 'the build context' });
      } else {
        // `docker build - < Dockerfile`: the body is the Dockerfile itself, with an empty context.
        const chunks: Buffer[] = [];
        let size = 0;
        for await (const c of stream) {
          size += (c as Buffer).length;
          checkDockerfileSize(size, 'Dockerfile');
          chunks.push(c as Buffer);
        }
        dockerfileName = 'Dockerfile';
        await fs.writeFile(path.join(ctxDir, dockerfileName), Buffer.concat(chunks));
      }
      const text = await readContextFile(ctxDir, dockerfileName, dockerfileName);
      if (text !== undefined) checkDockerfileSize(Buffer.byteLength(text), dockerfileName);
      if (text === undefined) throw new InvalidArgumentError(`Cannot locate specified Dockerfile: ${dockerfileName}`);
      const ignoreText = await readContextFile(ctxDir, '.dockerignore', '.dockerignore');
      const run = new BuildRun(this, this.deps, parseDockerfile(text, path.posix.basename(dockerfileName)), ctxDir, IgnoreMatcher.parse(ignoreText), opts, out);
      const id = await run.execute();
      const tagged: string[] = [];
      for (const ref of tags) {
        await this.deps.images.store.tag(id, ref);
        this.deps.images.onEvent('tag', id, familiarReference(ref));
        tagged.push(familiarReference(ref));
      }
      out.raw({ aux: { ID: id } });
      out.stream(`Successfully built ${short(id)}\n`);
      for (const t of tagged) out.stream(`Successfully tagged ${t}\n`);
      return { id, tags: tagged };
    } finally {
      await removeTree(ctxDir);
    }
  }

  // ---- helpers the run uses -----------------------------------------------------------------

  /** Make sure every layer of an image is in the storage driver (after a driver switch, say). */
  async ensureUnpacked(rec: ImageRecord): Promise<void> {
    const storage = this.storage();
    const top = rec.chainIds[rec.chainIds.length - 1];
    if (!top || (await storage.hasLayer(top))) return;
    const unpacker = this.deps.unpacker();
    if (!unpacker) throw new BerthError('no layer unpacker configured');
    await unpacker.unpack(
      rec.layers.map((blob, i) => ({ blob, diffId: rec.diffIds[i], chainId: rec.chainIds[i], parent: i ? rec.chainIds[i - 1] : null })),
      () => undefined,
    );
  }

  /**
   * A throwaway writable layer over `topChainId`, mounted while `fn` runs. Then either `diff()`
   * stores its changes as a layer or `discard()` drops it; both remove it.
   */
  async withScratchLayer<T>(topChainId: string | null, fn: (rootfs: string) => Promise<T>): Promise<{ value: T; diff: () => Promise<StoredLayer>; discard: () => Promise<void> }> {
    const storage = this.storage();
    const id = `build-${randomBytes(12).toString('hex')}`;
    await storage.create(id, topChainId);
    let removed = false;
    const discard = async () => {
      if (removed) return;
      removed = true;
      await storage.remove(id).catch((err) => this.deps.log.warn('removing a build layer failed', { id, error: (err as Error).message }));
    };
    try {
      const rootfs = await storage.mount(id);
      let value: T;
      try {
        value = await fn(rootfs);
      } finally {
        await storage.unmount(id).catch(() => undefined);
      }
      const diff = async () => {
        try {
          return await storeLayer(this.deps.content, await storage.diff(id));
        } finally {
          await discard();
        }
      };
      return { value, diff, discard };
    } catch (err) {
      await discard();
      throw err;
    }
  }
}

/** One build: the parsed Dockerfile, its context and the state of every stage. */
class BuildRun {
  private readonly escape: string;
  private readonly metaArgs = new Map<string, string | undefined>();
  private readonly buildArgs: Map<string, string>;
  private readonly consumedArgs = new Set<string>();
  private readonly stageResults: StageState[] = [];
  private step = 0;
  private totalSteps = 0;
  private readonly contextTree: SourceTree;

  constructor(
    private readonly builder: ImageBuilder,
    private readonly deps: BuilderDeps,
    private readonly dockerfile: Dockerfile,
    ctxDir: string,
    ignore: IgnoreMatcher,
    private readonly opts: BuildOptions,
    private readonly out: BuildOutput,
  ) {
    this.escape = dockerfile.escape;
    this.buildArgs = new Map(Object.entries(opts.buildArgs ?? {}).filter((e): e is [string, string] => typeof e[1] === 'string'));
    this.contextTree = { root: ctxDir, ignore, confined: true, what: 'build context' };
  }

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
    this.totalSteps = stages.slice(0, targetIndex + 1).reduce((n, s) => n + 1 + s.instructions.length, 0) + labelStep;

    let state: StageState | undefined;
    for (const stage of stages.slice(0, targetIndex + 1)) {
      this.checkAborted();
      state = await this.buildStage(stage, stage.index === targetIndex && labelStep > 0);
      this.stageResults[stage.index] = state;
    }
    if (!state!.imageId) state!.imageId = await this.materialize(state!);
    const unused = [...this.buildArgs.keys()].filter((k) => !this.consumedArgs.has(k) && !BUILTIN_ARGS.includes(k));
    if (unused.length) this.out.stream(`[Warning] One or more build-args [${unused.join(' ')}] were not consumed\n`);
    return state!.imageId;
  }

  private checkAborted(): void {
    if (this.opts.signal?.aborted) throw new CanceledError('build cancelled: the client went away');
  }

  private stepLine(ins: Instruction): void {
    this.step++;
    this.out.stream(`Step ${this.step}/${this.totalSteps} : ${ins.original}\n`);
  }

  // ---- stages -------------------------------------------------------------------------------

  private async buildStage(stage: Stage, addLabels: boolean): Promise<StageState> {
    this.stepLine(stage.from);
    const state = await this.from(stage);
    this.out.stream(` ---> ${state.imageId ? short(state.imageId) : 'scratch'}\n`);
    // ONBUILD triggers of the base image run first, as Docker does; the new image keeps none.
    const triggers = state.config.config?.OnBuild ?? [];
    if (triggers.length) {
      this.out.stream(`# Executing ${triggers.length} build trigger${triggers.length > 1 ? 's' : ''}\n`);
      for (const t of triggers) {
        const ins = parseInstructionLine(t, stage.from.line, this.escape, 'ONBUILD trigger');
        await this.dispatch(state, ins, stage);
      }
    }
    let onbuildCleared = !triggers.length;
    for (const ins of stage.instructions) {
      this.checkAborted();
      this.stepLine(ins);
      if (!onbuildCleared) {
        // The first step after the triggers drops them from the config (the key says so too).
        state.config = { ...state.config, config: { ...(state.config.config ?? {}), OnBuild: null } };
        onbuildCleared = true;
      }
      await this.dispatch(state, ins, stage);
    }
    if (addLabels) {
      const labels = Object.entries(this.opts.labels!).map(([k, v]) => `${JSON.stringify(k)}=${JSON.stringify(v)}`).join(' ');
      const ins = parseInstructionLine(`LABEL ${labels}`, stage.from.line, this.escape, 'build labels');
      this.stepLine(ins);
      await this.dispatch(state, ins, stage);
    }
    return state;
  }

  private async from(stage: Stage): Promise<StageState> {
    const name = baseName(stage, this.metaArgs, this.escape);
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

  /** An image by name: local, or pulled (always with --pull). */
  private async image(name: string): Promise<ImageRecord> {
    let rec = this.opts.pull ? undefined : this.deps.images.store.find(name);
    if (!rec) {
      try {
        rec = await this.deps.images.pull(name, {
          credentials: credentialsFor(this.opts.registryConfig, name),
          signal: this.opts.signal,
          progress: (e) => this.out.raw(progressMessage(e)),
        });
      } catch (err) {
        if (err instanceof NotFoundError) throw new BuildError(`pull access denied or image not found: ${name}: ${err.message}`);
        throw err;
      }
    }
    await this.builder.ensureUnpacked(rec);
    return rec;
  }

  // ---- variables ----------------------------------------------------------------------------

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

  /** Build args in scope and not shadowed by ENV: the env a RUN gets on top of the config's. */
  private argEnv(state: StageState): string[] {
    const env = state.config.config?.Env ?? [];
    const out: string[] = [];
    for (const [k, v] of [...state.args.entries()].sort(([a], [b]) => a.localeCompare(b))) {
      if (v === undefined || envValue(env, k) !== undefined) continue;
      out.push(`${k}=${v}`);
    }
    return out;
  }

  // ---- steps --------------------------------------------------------------------------------

  private async dispatch(state: StageState, ins: Instruction, stage: Stage): Promise<void> {
    const lookup = this.lookup(state);
    const cfg = (): ContainerConfig => structuredClone(state.config.config ?? {});
    const shell = state.config.config?.Shell?.length ? state.config.config.Shell : DEFAULT_SHELL;
    const nop = (text: string) => `/bin/sh -c #(nop)  ${text}`;
    const what = `${ins.name} (line ${ins.line})`;
    const meta = (text: string, change: (c: ContainerConfig) => void, author?: string) =>
      this.commit(state, [ins.name, text], async () => {
        const c = cfg();
        change(c);
        return { containerConfig: c, createdBy: nop(text), author };
      });

    switch (ins.name) {
      case 'ARG': {
        declareArgs(ins, this.escape, state.args, lookup, this.buildArgs, this.consumedArgs, this.metaArgs);
        if (state.imageId) this.out.stream(` ---> ${short(state.imageId)}\n`);
        return;
      }
      case 'ENV': {
        const pairs = keyValuePairs(ins.args, lookup, this.escape, what);
        const text = `ENV ${pairs.map(([k, v]) => `${k}=${v}`).join(' ')}`;
        return meta(text, (c) => {
          const env = [...(c.Env ?? [])];
          for (const [k, v] of pairs) {
            const i = env.findIndex((e) => e.split('=')[0] === k);
            if (i >= 0) env[i] = `${k}=${v}`;
            else env.push(`${k}=${v}`);
          }
          c.Env = env;
        });
      }
      case 'LABEL': {
        const pairs = keyValuePairs(ins.args, lookup, this.escape, what);
        return meta(`LABEL ${pairs.map(([k, v]) => `${k}=${v}`).join(' ')}`, (c) => {
          c.Labels = { ...(c.Labels ?? {}), ...Object.fromEntries(pairs) };
        });
      }
      case 'MAINTAINER': {
        const who = processWord(ins.args, lookup, this.escape, what);
        return meta(`MAINTAINER ${who}`, () => undefined, who);
      }
      case 'USER': {
        const user = processWord(ins.args, lookup, this.escape, what);
        return meta(`USER ${user}`, (c) => (c.User = user));
      }
      case 'EXPOSE': {
        const ports = processWords(ins.args, lookup, this.escape, what);
        return meta(`EXPOSE ${ports.join(' ')}`, (c) => Object.assign(c, applyChanges(c, [`EXPOSE ${ports.join(' ')}`])));
      }
      case 'VOLUME': {
        const vols = ins.json ?? processWords(ins.args, lookup, this.escape, what);
        if (!vols.length || vols.some((v) => !v)) throw new DockerfileError(this.dockerfile.file, ins.line, 'VOLUME specified can not be an empty string');
        return meta(`VOLUME [${vols.join(' ')}]`, (c) => Object.assign(c, applyChanges(c, [`VOLUME ${JSON.stringify(vols)}`])));
      }
      case 'STOPSIGNAL': {
        const sig = processWord(ins.args, lookup, this.escape, what);
        return meta(`STOPSIGNAL ${sig}`, (c) => Object.assign(c, applyChanges(c, [`STOPSIGNAL ${sig}`])));
      }
      case 'CMD': {
        const cmd = ins.json ?? [...shell, ins.args];
        state.cmdSet = true;
        return meta(`CMD ${JSON.stringify(cmd)}`, (c) => (c.Cmd = cmd));
      }
      case 'ENTRYPOINT': {
        const ep = ins.json ?? (ins.args ? [...shell, ins.args] : []);
        const keepCmd = state.cmdSet;
        return meta(`ENTRYPOINT ${JSON.stringify(ep)}${keepCmd ? '' : ' (CMD reset)'}`, (c) => {
          c.Entrypoint = ep.length ? ep : null;
          if (!keepCmd) c.Cmd = null;
        });
      }
      case 'SHELL':
        return meta(`SHELL ${JSON.stringify(ins.json)}`, (c) => (c.Shell = ins.json!));
      case 'HEALTHCHECK': {
        const hc = healthcheck(ins);
        return meta(`HEALTHCHECK ${JSON.stringify(hc)}`, (c) => (c.Healthcheck = hc));
      }
      case 'ONBUILD': {
        const trigger = `${ins.inner!.name} ${ins.inner!.original.replace(/^\S+\s*/, '')}`.trim();
        return meta(`ONBUILD ${trigger}`, (c) => (c.OnBuild = [...(c.OnBuild ?? []), trigger]));
      }
      case 'WORKDIR':
        return this.workdir(state, processWord(ins.args, lookup, this.escape, what));
      case 'RUN':
        return this.run(state, ins, shell);
      case 'COPY':
      case 'ADD':
        return this.copy(state, ins, stage, lookup);
      case 'FROM':
        throw new DockerfileError(this.dockerfile.file, ins.line, 'FROM is not allowed as an ONBUILD trigger');
    }
  }

  /**
   * One step with the cache: the key is (what the stage stands at, `parts`). A hit on a step that
   * made an image moves the stage to it; otherwise `produce` runs. A step that adds a layer is
   * recorded as an image; a metadata step only changes the config, so a Dockerfile of many ENV
   * lines makes one image at the end (or before the next RUN), not one per line.
   */
  private async commit(state: StageState, parts: string[], produce: () => Promise<StepResult | undefined>, onHit?: () => void): Promise<void> {
    const key = BuildCache.key([state.cacheKey, state.config.config?.OnBuild?.length ? 'onbuild' : '', ...parts]);
    const cached = await this.cachedImage(key);
    if (cached) {
      onHit?.();
      await this.builder.ensureUnpacked(cached);
      await this.moveTo(state, cached);
      this.out.stream(' ---> Using cache\n');
      this.out.stream(` ---> ${short(cached.id)}\n`);
      return;
    }
    const result = await produce();
    if (!result) return;
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
      if (await this.cachedImage(seenKey(key))) this.out.stream(' ---> Using cache\n');
      return;
    }
    const rec = await this.record(state, config, [...state.layers, result.layer.blob]);
    await this.builder.cache.set([key, ...state.pendingKeys.map(seenKey)], rec.id, (id) => !!this.deps.images.store.get(id));
    state.imageId = rec.id;
    state.parentId = rec.id;
    state.cacheKey = rec.id;
    state.pendingKeys = [];
    state.config = config;
    state.layers = rec.layers;
    this.out.stream(` ---> ${short(rec.id)}\n`);
  }

  /** The image the cache holds for `key`, if it still exists (never with --no-cache). */
  private async cachedImage(key: string): Promise<ImageRecord | undefined> {
    if (this.opts.noCache) return undefined;
    const id = await this.builder.cache.get(key);
    const rec = id ? this.deps.images.store.get(id) : undefined;
    return rec && this.cacheSources().has(rec.id) ? rec : undefined;
  }

  private cacheSourceIds?: Set<string>;

  /** The images a cache hit may land on: anything, or the --cache-from images and their parents. */
  private cacheSources(): { has(id: string): boolean } {
    if (!this.opts.cacheFrom?.length) return { has: () => true };
    if (!this.cacheSourceIds) {
      this.cacheSourceIds = new Set();
      for (const ref of this.opts.cacheFrom) {
        for (let rec = this.deps.images.store.find(ref); rec && !this.cacheSourceIds.has(rec.id); rec = rec.parent ? this.deps.images.store.get(rec.parent) : undefined) {
          this.cacheSourceIds.add(rec.id);
        }
      }
    }
    return this.cacheSourceIds;
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
   * An image record for the stage as it stands (RUN needs one for its container; the build's
   * result is one). Metadata steps seen before end in the image they made then, so an unchanged
   * rebuild ends in the same image ID.
   */
  private async materialize(state: StageState): Promise<string> {
    if (state.imageId) return state.imageId;
    const pending = state.pendingKeys;
    const cached = pending.length ? await this.cachedImage(exactKey(state.cacheKey)) : undefined;
    if (cached) {
      // Later steps key on the metadata chain, as they did when this image was made.
      const chain = state.cacheKey;
      await this.moveTo(state, cached);
      state.cacheKey = chain;
      return cached.id;
    }
    const rec = await this.record(state, { ...state.config, created: new Date().toISOString() }, state.layers);
    if (pending.length) await this.builder.cache.set([...pending.map(seenKey), exactKey(state.cacheKey)], rec.id, (id) => !!this.deps.images.store.get(id));
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

  private topChain(state: StageState): string | null {
    return chainIds(state.config.rootfs.diff_ids).pop() ?? null;
  }

  // ---- WORKDIR ------------------------------------------------------------------------------

  private async workdir(state: StageState, dir: string): Promise<void> {
    if (!dir) throw new InvalidArgumentError('WORKDIR requires a path');
    const abs = path.posix.resolve('/', state.config.config?.WorkingDir || '/', dir);
    await this.commit(state, ['WORKDIR', abs], async () => {
      const c: ContainerConfig = { ...structuredClone(state.config.config ?? {}), WorkingDir: abs };
      const comps = abs.split('/').filter(Boolean);
      const scratch = await this.builder.withScratchLayer(this.topChain(state), async (rootfs) => {
        if (await isDirInRoot(rootfs, comps)) return false;
        await mkdirInRoot(rootfs, comps, { uid: 0, gid: 0 });
        return true;
      });
      if (!scratch.value) {
        await scratch.discard();
        return { containerConfig: c, createdBy: `/bin/sh -c #(nop)  WORKDIR ${abs}` };
      }
      return { containerConfig: c, createdBy: `/bin/sh -c #(nop) WORKDIR ${abs}`, layer: await scratch.diff() };
    });
  }

  // ---- RUN ----------------------------------------------------------------------------------

  private async run(state: StageState, ins: Instruction, shell: string[]): Promise<void> {
    if (Object.keys(ins.flags).length) throw new BuildError(`RUN --${Object.keys(ins.flags)[0]} needs BuildKit; berth's builder is the classic one`);
    const cmd = ins.json ?? [...shell, ins.args];
    if (!cmd.length) throw new DockerfileError(this.dockerfile.file, ins.line, 'RUN requires at least one argument');
    const argEnv = this.argEnv(state);
    const createdBy = (argEnv.length ? `|${argEnv.length} ${argEnv.join(' ')} ` : '') + cmd.join(' ');
    await this.commit(state, ['RUN', JSON.stringify(cmd), JSON.stringify(argEnv)], async () => {
      const imageId = await this.materialize(state);
      const c = state.config.config ?? {};
      const containers = this.deps.containers;
      const { Id } = await containers.create({
        Image: imageId,
        Cmd: cmd,
        Entrypoint: [],
        Env: [...(c.Env ?? []), ...argEnv],
        WorkingDir: c.WorkingDir ?? '',
        User: c.User ?? '',
        Labels: {},
        HostConfig: { ExtraHosts: this.opts.extraHosts ?? [], ...(this.opts.networkMode ? { NetworkMode: this.opts.networkMode } : {}) },
      });
      this.out.stream(` ---> Running in ${short(Id)}\n`);
      const rm = this.opts.rm !== false;
      let ok = false;
      try {
        const code = await this.runContainer(Id);
        if (code !== 0) throw new BuildError(`The command '${cmd.join(' ')}' returned a non-zero code: ${code}`, code);
        const layer = await storeLayer(this.deps.content, await this.runDiff(Id));
        ok = true;
        return { containerConfig: structuredClone(c), createdBy, layer };
      } finally {
        if ((ok && rm) || (!ok && (rm || this.opts.forceRm))) {
          await containers.remove(Id, { force: true }).catch((err) => this.deps.log.warn('removing an intermediate container failed', { id: Id, error: (err as Error).message }));
          if (ok) this.out.stream(`Removing intermediate container ${short(Id)}\n`);
        }
      }
    });
  }

  /** Start the container, stream its output, and resolve with its exit code. */
  private async runContainer(id: string): Promise<number> {
    const containers = this.deps.containers;
    const exited = containers.waitFor(id, 'next-exit');
    let live = true;
    const stop = new AbortController();
    const onAbort = () => containers.kill(id, 'SIGKILL').catch(() => undefined);
    this.opts.signal?.addEventListener('abort', onAbort);
    let pump: Promise<void> | undefined;
    try {
      await containers.start(id);
      const logFile = containers.logPath(id);
      pump = (async () => {
        for await (const entry of readLogs(logFile, { stdout: true, stderr: true, follow: true, isLive: () => live, signal: stop.signal })) {
          // dockerd shows RUN's stderr in bright red; clients such as docker-py look for it.
          this.out.stream(entry.stream === 'stderr' ? `\x1b[91m${entry.log}\x1b[0m` : entry.log);
        }
      })();
      const status = await exited;
      live = false;
      await pump;
      if (this.opts.signal?.aborted) throw new CanceledError('build cancelled: the client went away');
      return status.StatusCode;
    } catch (err) {
      live = false;
      stop.abort();
      await pump?.catch(() => undefined);
      throw err;
    } finally {
      this.opts.signal?.removeEventListener('abort', onAbort);
    }
  }

  /** The container's diff without the mount points the launcher made (Docker keeps those in an init layer). */
  private async runDiff(id: string): Promise<Readable> {
    const storage = this.builder.storage();
    const added = new Set(
      (await storage.changes(id))
        .filter((c) => c.kind === 'A' && INIT_PATHS.some((p) => c.path === p || c.path.startsWith(p + '/')))
        .map((c) => c.path),
    );
    const diff = await storage.diff(id);
    if (!added.size) return diff;
    return filterTar(diff, (name) => added.has('/' + name.replace(/^\.?\/+/, '').replace(/\/+$/, '')));
  }

  // ---- COPY / ADD ---------------------------------------------------------------------------

  private async copy(state: StageState, ins: Instruction, stage: Stage, lookup: Lookup): Promise<void> {
    const words = ins.json ? ins.json.map((w) => processWord(w, lookup, this.escape, ins.name)) : processWords(ins.args, lookup, this.escape, ins.name);
    const dest = words[words.length - 1];
    const sources = words.slice(0, -1);
    const flags = Object.fromEntries(Object.entries(ins.flags).map(([k, v]) => [k, processWord(v, lookup, this.escape, ins.name)]));
    for (const f of ['link', 'parents', 'exclude', 'checksum', 'keep-git-dir']) if (flags[f] !== undefined) throw new BuildError(`${ins.name} --${f} needs BuildKit; berth's builder is the classic one`);
    if (ins.name === 'ADD') {
      const remote = sources.find((s) => /^[a-z][a-z0-9+.-]*:\/\//i.test(s) || /^git@/.test(s));
      if (remote) throw new BuildError(`ADD ${remote}: remote sources are not supported: berth builds without network access; download the file into the build context and COPY it`);
    }
    const chmod = flags.chmod !== undefined ? parseChmod(flags.chmod, ins.name) : undefined;
    const workdir = state.config.config?.WorkingDir || '/';
    const destAbs = path.posix.resolve('/', workdir, dest);
    const destIsDir = dest.endsWith('/') || dest === '.' || dest.endsWith('/.');
    const text = `${ins.name} ${Object.entries(flags).map(([k, v]) => `--${k}=${v} `).join('')}${sources.join(' ')} ${destAbs}${destIsDir ? '/' : ''}`;

    // Where the sources come from: the context, an earlier stage, or an image.
    let fromImage: ImageRecord | undefined;
    if (flags.from !== undefined) {
      const want = flags.from.toLowerCase();
      const idx = /^\d+$/.test(want) ? Number(want) : this.dockerfile.stages.findIndex((s) => s.name === want);
      if (idx >= 0 && idx >= stage.index) throw new BuildError(`${ins.name} --from=${flags.from}: a stage can only copy from stages before it`);
      if (idx >= 0 && this.stageResults[idx]) {
        const s = this.stageResults[idx];
        fromImage = this.deps.images.store.get(await this.materialize(s));
      } else if (/^\d+$/.test(want)) throw new BuildError(`${ins.name} --from=${flags.from}: no stage with index ${want}`);
      else fromImage = await this.image(flags.from);
      if (!fromImage) throw new BuildError(`${ins.name} --from=${flags.from}: the image of that stage is gone`);
    }

    const run = async (tree: SourceTree): Promise<StepResult> => {
      const resolved = await resolveSources(tree, sources, ins.name);
      return this.copyInto(state, ins, resolved, destAbs, destIsDir, flags.chown, chmod, tree);
    };

    if (fromImage) {
      const from = fromImage;
      const top = from.chainIds[from.chainIds.length - 1] ?? null;
      // The source image's ID pins its content: no need to hash the files for the key.
      await this.commit(state, [text, `from:${from.id}`], async () => {
        const source = await this.builder.withScratchLayer(top, (rootfs) => run({ root: rootfs, confined: false, what: `stage or image ${flags.from}` }));
        await source.discard();
        return source.value;
      });
      return;
    }
    const resolved = await resolveSources(this.contextTree, sources, ins.name);
    const hash = await hashSources(resolved);
    await this.commit(state, [text, hash], () => this.copyInto(state, ins, resolved, destAbs, destIsDir, flags.chown, chmod, this.contextTree));
  }

  /**
   * Write resolved sources into a new layer over the stage's image. Sources read from a mounted
   * image are copied while it is mounted, so `copyInto` runs inside that mount's callback.
   */
  private async copyInto(state: StageState, ins: Instruction, sources: CopySource[], destAbs: string, destIsDir: boolean, chown: string | undefined, chmod: number | undefined, tree: SourceTree): Promise<StepResult> {
    if (sources.length > 1 && !destIsDir) throw new CopyError(`When using ${ins.name} with more than one source file, the destination must be a directory and end with a /`);
    const destComps = destAbs.split('/').filter(Boolean);
    const scratch = await this.builder.withScratchLayer(this.topChain(state), async (rootfs) => {
      const owner = chown ? await resolveChown(rootfs, chown) : undefined;
      const dirOwner = owner ?? { uid: 0, gid: 0 };
      for (const src of sources) {
        if (src.isDir) {
          const base = await mkdirInRoot(rootfs, destComps, dirOwner);
          for (const item of src.items) await writeItem(rootfs, [...base, ...item.rel.split('/')], item, { owner, mode: chmod });
          continue;
        }
        const item = src.items[0];
        const kind = ins.name === 'ADD' && tree.confined ? await archiveKind(item.host) : undefined;
        if (kind) {
          // ADD of a local archive: its contents land in the destination directory, owners kept.
          const base = await mkdirInRoot(rootfs, destComps, dirOwner);
          const stream = createReadStream(item.host);
          await extractTar(kind === 'gzip' ? stream.pipe(zlib.createGunzip()) : stream, rootfs, base, { chown: true, what: `ADD ${src.shown}` });
          continue;
        }
        const intoDir = destIsDir || (await isDirInRoot(rootfs, destComps));
        const target = intoDir ? [...destComps, src.name] : destComps;
        if (!target.length) throw new CopyError(`${ins.name} failed: cannot copy ${src.shown} over /`);
        await writeItem(rootfs, target, item, { owner, mode: chmod });
      }
    });
    const layer = await scratch.diff();
    const kind = sources.length === 1 ? (sources[0].isDir ? 'dir' : 'file') : 'multi';
    const hash = layer.diffId.replace(/^sha256:/, '');
    return {
      containerConfig: structuredClone(state.config.config ?? {}),
      createdBy: `/bin/sh -c #(nop) ${ins.name} ${kind}:${hash} in ${destAbs}${destIsDir && destAbs !== '/' ? '/' : ''} `,
      layer,
    };
  }
}

// ---- small pieces ------------------------------------------------------------------------------

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

/** `--chown=user[:group]`: names from the image's own passwd/group; a lone user means gid = uid. */
async function resolveChown(rootfs: string, spec: string): Promise<Owner> {
  const [userPart, groupPart] = spec.split(':', 2);
  if (!userPart) throw new CopyError(`--chown=${spec}: a user is required`);
  try {
    const user = await resolveUser(rootfs, userPart);
    if (groupPart === undefined || groupPart === '') return { uid: user.uid, gid: /^\d+$/.test(userPart) ? user.uid : user.gid };
    const group = await resolveUser(rootfs, `0:${groupPart}`);
    return { uid: user.uid, gid: group.gid };
  } catch (err) {
    throw new CopyError(`--chown=${spec}: ${(err as Error).message}`);
  }
}

function parseChmod(spec: string, what: string): number {
  if (!/^[0-7]{3,4}$/.test(spec)) throw new BuildError(`${what} --chmod=${spec}: expected an octal mode such as 755`);
  return parseInt(spec, 8);
}

/** Go-style durations (`30s`, `1m30s`, `500ms`) in nanoseconds, as Docker stores them. */
function durationNs(s: string, flag: string): number {
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g;
  const unit: Record<string, number> = { ns: 1, us: 1e3, µs: 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };
  let total = 0;
  let consumed = 0;
  for (const m of s.matchAll(re)) {
    total += Number(m[1]) * unit[m[2]];
    consumed += m[0].length;
  }
  if (!s || consumed !== s.length) throw new BuildError(`HEALTHCHECK --${flag}=${s}: not a duration (e.g. 30s, 1m30s)`);
  return Math.round(total);
}

function healthcheck(ins: Instruction): Record<string, unknown> {
  const m = /^(\S+)\s*([\s\S]*)$/.exec(ins.args);
  const kind = m?.[1].toUpperCase();
  if (kind === 'NONE') {
    if (m![2].trim() || Object.keys(ins.flags).length) throw new BuildError('HEALTHCHECK NONE takes no arguments or options');
    return { Test: ['NONE'] };
  }
  if (kind !== 'CMD') throw new BuildError(`HEALTHCHECK: unknown type ${m?.[1] ?? ''}: expected CMD or NONE`);
  const rest = m![2].trim();
  if (!rest) throw new BuildError('HEALTHCHECK CMD requires a command');
  let json: string[] | undefined;
  if (rest.startsWith('[')) {
    try {
      const v = JSON.parse(rest);
      if (Array.isArray(v) && v.every((x) => typeof x === 'string')) json = v;
    } catch {
      /* the shell form */
    }
  }
  const hc: Record<string, unknown> = { Test: json ? ['CMD', ...json] : ['CMD-SHELL', rest] };
  const f = ins.flags;
  if (f.interval) hc.Interval = durationNs(f.interval, 'interval');
  if (f.timeout) hc.Timeout = durationNs(f.timeout, 'timeout');
  if (f['start-period']) hc.StartPeriod = durationNs(f['start-period'], 'start-period');
  if (f['start-interval']) hc.StartInterval = durationNs(f['start-interval'], 'start-interval');
  if (f.retries) {
    const n = Number(f.retries);
    if (!Number.isInteger(n) || n < 0) throw new BuildError(`HEALTHCHECK --retries=${f.retries}: expected a whole number`);
    hc.Retries = n;
  }
  return hc;
}


/** Copy a tar stream, leaving out the entries `drop` names. */
function filterTar(input: Readable, drop: (name: string) => boolean): Readable {
  const extract = tar.extract();
  const pack = tar.pack();
  const out = new PassThrough();
  (async () => {
    for await (const entry of extract) {
      if (drop(entry.header.name)) {
        entry.resume();
        continue;
      }
      await new Promise<void>((resolve, reject) => {
        const sink = pack.entry(entry.header, (err) => (err ? reject(err) : resolve()));
        entry.pipe(sink as unknown as NodeJS.WritableStream);
      });
    }
    pack.finalize();
  })().catch((err) => {
    pack.destroy(err);
    out.destroy(err);
  });
  input.on('error', (err) => extract.destroy(err));
  input.pipe(extract);
  pack.pipe(out);
  return out;
}
