/** What a build is asked for, what it gives back, and the engine parts it works with. */
import type { Logger } from '../contracts/types';
import type { RegistryCredentials } from '../contracts/registry';
import type { StorageDriver } from '../contracts/storage';
import type { ContentStore } from '../content/store';
import type { ImageService } from '../images/service';
import type { LayerUnpacker } from '../images/pull';
import type { ContainerManager } from '../containers/manager';

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

export interface BuildResult {
  id: string;
  tags: string[];
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
