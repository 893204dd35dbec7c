/**
 * What the instruction handlers (instructions/) share with the build driver: the state of a
 * stage, what one step produces, and the driver's services a handler may call.
 */
import type { ContainerConfig, Descriptor, ImageConfig } from '../contracts/types';
import { type ImageRecord, chainIds } from '../images/store';
import type { ManifestFormat } from '../images/manifest-build';
import type { StoredLayer } from '../images/store-layer';
import type { ArgValues } from './args';
import type { Dockerfile } from './dockerfile';
import type { BuildLayers } from './layers';
import type { BuildOptions, BuilderDeps } from './options';
import type { BuildProgress } from './progress';
import type { SourceTree } from './sources';

const DEFAULT_SHELL = ['/bin/sh', '-c'];

/** What a stage has built so far. */
export interface StageState {
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
  args: ArgValues;
  /** CMD was set in this stage (ENTRYPOINT then keeps it). */
  cmdSet: boolean;
}

/** What one step produced: a new container config and, for filesystem steps, a layer. */
export interface StepResult {
  containerConfig: ContainerConfig;
  author?: string;
  layer?: StoredLayer;
  createdBy: string;
}

/** The build driver as the instruction handlers see it. */
export interface StepContext {
  readonly deps: BuilderDeps;
  readonly opts: BuildOptions;
  readonly dockerfile: Dockerfile;
  readonly layers: BuildLayers;
  readonly progress: BuildProgress;
  readonly contextTree: SourceTree;
  /** What each stage built, by stage index (stages not built yet are missing). */
  readonly stageResults: readonly StageState[];
  /** --build-arg values, the names some ARG declared, and the ARGs before the first FROM. */
  readonly buildArgs: Map<string, string>;
  readonly consumedArgs: Set<string>;
  readonly metaArgs: ArgValues;
  /**
   * One step with the cache: the key is (what the stage stands at, `parts`). A hit moves the
   * stage to the cached image; otherwise `produce` runs and its result becomes the stage's state.
   */
  commit(state: StageState, parts: string[], produce: () => Promise<StepResult>): Promise<void>;
  /** An image record for the stage as it stands (a RUN needs one for its container). */
  materialize(state: StageState): Promise<string>;
  /** An image by name: local, or pulled (always with --pull). */
  image(name: string): Promise<ImageRecord>;
}

/** The chain ID of the stage's top layer (null for an empty rootfs). */
export function topChain(state: StageState): string | null {
  return chainIds(state.config.rootfs.diff_ids).pop() ?? null;
}

/** The shell of RUN, CMD and ENTRYPOINT in shell form: SHELL's, or /bin/sh -c. */
export function shellOf(state: StageState): string[] {
  return state.config.config?.Shell?.length ? state.config.config.Shell : DEFAULT_SHELL;
}
