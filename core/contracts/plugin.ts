import type { DependencyContainer } from 'tsyringe';
import type { Logger } from './types';

/**
 * The version of the plugin API (`berth/plugin`), semver over its exports: adding a name or an
 * optional field bumps the minor, removing or changing one bumps the major.
 * 1.1.0: a single-slot plugin named by URI in an enabled plugin's `requires` starts unselected.
 */
export const PLUGIN_API_VERSION = '1.1.0';

/** Extension point types that berth itself knows; plugins may declare others. */
export type PluginType = 'storage' | 'isolator' | 'registry' | 'runtime' | (string & {});

/** What a plugin's init receives. */
export interface PluginContext<Config = unknown> {
  /** `type.id`, e.g. `storage.overlay`. */
  readonly uri: string;
  /** The plugin's config: its defaults merged with `pluginConfig[uri]`, passed through parseConfig. */
  readonly config: Config;
  /** berth's state root. */
  readonly root: string;
  /** The plugin's own state directory (`<root>/plugins/<uri>`), created 0700 before init. */
  readonly stateDir: string;
  /** A child DI container: register private services here; core services resolve from it. */
  readonly container: DependencyContainer;
  readonly log: Logger;
  /** The chosen implementation of a single-slot type (storage, runtime), if initialised. */
  getSingle<T>(type: PluginType): T | undefined;
  /** Every initialised implementation of a multi-slot type (isolators, registries), in config order. */
  getAll<T>(type: PluginType): T[];
}

/** A plugin manifest: plain data plus two hooks, default-exported, no side effects at import. */
export interface PluginManifest<Config = unknown, Impl = unknown> {
  type: PluginType;
  id: string;
  /** The major version of `berth/plugin` this plugin was written for; another major refuses to load it. */
  apiVersion?: number;
  /**
   * Plugin types (or full URIs) that must be initialised before this one. Ordering, not imports;
   * a storage or runtime plugin named by URI starts even when config selected another (since 1.1).
   */
  requires?: string[];
  /** Default config section, merged under `pluginConfig[uri]`. */
  defaults?: Partial<Config>;
  /** Validate the merged config; throw ConfigError naming the key. */
  parseConfig?(raw: Record<string, unknown>): Config;
  /** Build the implementation. Throw SkipPlugin('why') to opt out. */
  init(ctx: PluginContext<Config>): Promise<Impl> | Impl;
}

/** Identity helper that gives a manifest its types. */
export function definePlugin<Config = Record<string, unknown>, Impl = unknown>(manifest: PluginManifest<Config, Impl>): PluginManifest<Config, Impl> {
  return manifest;
}

export type PluginStatus = 'ok' | 'skipped' | 'failed' | 'disabled';

/** One row of `berth plugins`. */
export interface PluginInfo {
  uri: string;
  type: string;
  id: string;
  status: PluginStatus;
  reason?: string;
  /** `builtin`, or the path / package name it was loaded from. */
  source: string;
}
