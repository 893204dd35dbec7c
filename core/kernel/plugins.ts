/**
 * The plugin kernel: collects manifests (built-ins plus config `plugins`), checks them, drops the
 * disabled ones, orders them by `requires`, and initialises each with its own context. Each
 * plugin's outcome is recorded (ok / skipped / failed / disabled) for `berth plugins`.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { DependencyContainer } from 'tsyringe';
import type { Logger } from '../contracts/types';
import { ConfigError, SkipPlugin } from '../contracts/errors';
import { PLUGIN_API_VERSION, type PluginContext, type PluginInfo, type PluginManifest } from '../contracts/plugin';
import { SLOTS, type Slot } from '../contracts/slots';
import type { BerthConfig } from './config';
import { ensureDir } from '../util/fs';

/** Single-slot types: exactly one implementation is chosen by config. */
const SINGLE_SLOTS: Record<string, (c: BerthConfig) => string> = {
  storage: (c) => c.storage.driver,
  runtime: (c) => c.runtime,
};

export class PluginLoadError extends Error {}

interface Candidate {
  manifest: PluginManifest<any, any>;
  uri: string;
  source: string;
}

export interface LoadedPlugins {
  infos: PluginInfo[];
  getSingle<T>(type: string): T | undefined;
  getAll<T>(type: string): T[];
  /** An initialised plugin's implementation by URI. */
  get<T>(uri: string): T | undefined;
  /** Why a single slot is empty, for clear errors ("no storage driver: storage.overlay skipped: ..."). */
  whyMissing(type: string): string;
  /** The URI of an implementation resolved from a slot (isolator timings and errors name it). */
  uriOf(impl: unknown): string | undefined;
  /** berthd is stopping: every plugin's `close()`, in reverse init order; a failure is logged, the rest still close. */
  closeAll(): Promise<void>;
}

/** The implementations in a slot, from the container the kernel registered them in: a single slot holds at most one. */
export function resolveSlot<T>(container: DependencyContainer, slot: Slot<T>): T[] {
  return container.isRegistered(slot.token, true) ? container.resolveAll<T>(slot.token) : [];
}

function isManifest(m: any): m is PluginManifest {
  return m && typeof m === 'object' && typeof m.type === 'string' && typeof m.id === 'string' && typeof m.init === 'function';
}

/** A module's default export, whether it was written as ESM or compiled to CommonJS. */
function manifestOf(mod: any): unknown {
  let m = mod?.default ?? mod;
  if (!isManifest(m) && isManifest(m?.default)) m = m.default;
  return m;
}

async function importManifest(specifier: string, source: string): Promise<Candidate> {
  let mod: unknown;
  try {
    mod = await import(path.isAbsolute(specifier) ? pathToFileURL(specifier).href : specifier);
  } catch (err) {
    throw new PluginLoadError(`cannot load plugin ${source}: ${(err as Error).message}`);
  }
  const manifest = manifestOf(mod);
  if (!isManifest(manifest)) {
    throw new PluginLoadError(`plugin ${source} does not default-export a manifest (definePlugin({ type, id, init }))`);
  }
  if (!/^[a-z0-9][a-z0-9-]*$/.test(manifest.id) || !/^[a-z0-9][a-z0-9-]*$/.test(manifest.type)) {
    throw new PluginLoadError(`plugin ${source}: type and id must be lowercase words (got "${manifest.type}.${manifest.id}")`);
  }
  const major = Number(PLUGIN_API_VERSION.split('.')[0]);
  if (manifest.apiVersion !== undefined && manifest.apiVersion !== major) {
    throw new PluginLoadError(`plugin ${source} was written for berth/plugin ${manifest.apiVersion}.x; this berthd has ${PLUGIN_API_VERSION}`);
  }
  return { manifest, uri: `${manifest.type}.${manifest.id}`, source };
}

/** The built-in plugins: the index module of every folder under <package>/plugins. */
export function builtinPluginDirs(pluginsDir: string): string[] {
  if (!fs.existsSync(pluginsDir)) return [];
  return fs
    .readdirSync(pluginsDir, { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => ['index.js', 'index.ts'].map((f) => path.join(pluginsDir, d.name, f)).find((f) => fs.existsSync(f)))
    .filter((f): f is string => !!f)
    .sort();
}

/** Resolve a config `plugins` entry: a path (relative to the config's folder) or a package name. */
export function resolvePluginSpecifier(entry: string, configDir: string): string {
  if (entry.startsWith('.') || path.isAbsolute(entry)) {
    const abs = path.resolve(configDir, entry);
    try {
      return require.resolve(abs); // a folder resolves through its package.json or index.js
    } catch {
      throw new PluginLoadError(`plugin path ${entry} not found (resolved to ${abs})`);
    }
  }
  try {
    return require.resolve(entry, { paths: [configDir, process.cwd()] });
  } catch {
    throw new PluginLoadError(`plugin package "${entry}" not found from ${configDir}`);
  }
}

/** Order plugins so that each comes after what it requires; a cycle is an error naming it. */
export function orderPlugins<T extends { uri: string; manifest: { type: string; requires?: string[] } }>(plugins: T[]): T[] {
  const byUri = new Map(plugins.map((p) => [p.uri, p]));
  const deps = (p: T) => (p.manifest.requires ?? []).flatMap((r) => (r.includes('.') ? (byUri.has(r) ? [byUri.get(r)!] : []) : plugins.filter((q) => q.manifest.type === r && q !== p)));
  const state = new Map<string, 'visiting' | 'done'>();
  const out: T[] = [];
  const visit = (p: T, trail: string[]) => {
    const s = state.get(p.uri);
    if (s === 'done') return;
    if (s === 'visiting') {
      const cycle = [...trail.slice(trail.indexOf(p.uri)), p.uri];
      throw new PluginLoadError(`plugin dependency cycle: ${cycle.join(' -> ')}`);
    }
    state.set(p.uri, 'visiting');
    for (const d of deps(p)) visit(d, [...trail, p.uri]);
    state.set(p.uri, 'done');
    out.push(p);
  };
  for (const p of plugins) visit(p, []);
  return out;
}

export interface LoadPluginsOptions {
  config: BerthConfig;
  container: DependencyContainer;
  log: Logger;
  /** Folders of built-in plugins. */
  builtins: string[];
}

export async function loadPlugins({ config, container, log, builtins }: LoadPluginsOptions): Promise<LoadedPlugins> {
  const infos: PluginInfo[] = [];
  const candidates: Candidate[] = [];
  for (const dir of builtins) candidates.push(await importManifest(dir, 'builtin'));
  for (const entry of config.plugins) {
    try {
      candidates.push(await importManifest(resolvePluginSpecifier(entry, config.configDir), entry));
    } catch (err) {
      // The URI is unknown until the module loads; report it under its config entry.
      infos.push({ uri: entry, type: '?', id: '?', status: 'failed', reason: (err as Error).message, source: entry });
      log.error('plugin failed to load', { plugin: entry, error: (err as Error).message });
    }
  }
  const seen = new Map<string, Candidate>();
  for (const c of candidates) {
    const prior = seen.get(c.uri);
    if (prior) throw new PluginLoadError(`two plugins claim ${c.uri}: ${prior.source} and ${c.source}`);
    seen.set(c.uri, c);
  }

  const enabled: Candidate[] = [];
  const required = requiredByUri(candidates, config);
  for (const c of candidates) {
    const reason = disabledReason(c, config, required);
    if (reason) infos.push({ uri: c.uri, type: c.manifest.type, id: c.manifest.id, status: 'disabled', reason, source: c.source });
    else enabled.push(c);
  }

  const impls = new Map<string, unknown>();
  const byType = new Map<string, string[]>();
  const initOrder: string[] = [];
  const api = {
    getSingle<T>(type: string): T | undefined {
      const choose = SINGLE_SLOTS[type];
      return (choose ? impls.get(`${type}.${choose(config)}`) : (byType.get(type) ?? []).map((u) => impls.get(u))[0]) as T | undefined;
    },
    getAll<T>(type: string): T[] {
      let uris = byType.get(type) ?? [];
      if (type === 'isolator') uris = config.isolators.map((id) => `isolator.${id}`).filter((u) => impls.has(u));
      return uris.map((u) => impls.get(u) as T);
    },
  };

  for (const c of orderPlugins(enabled)) {
    const info: PluginInfo = { uri: c.uri, type: c.manifest.type, id: c.manifest.id, status: 'ok', source: c.source };
    infos.push(info);
    try {
      const raw: Record<string, unknown> = {
        ...(c.manifest.defaults ?? {}),
        ...(c.manifest.type === 'registry' ? { registries: config.registries } : {}),
        ...(config.pluginConfig[c.uri] ?? {}),
      };
      let pluginConfig: unknown = raw;
      if (c.manifest.parseConfig) {
        try {
          pluginConfig = c.manifest.parseConfig(raw);
        } catch (err) {
          if (err instanceof ConfigError) {
            // Keep the plugin's own words: drop the "<file>: <key>: " prefix ConfigError put in front.
            const prefix = `${err.file ? `${err.file}: ` : ''}${err.key}: `;
            const what = err.message.startsWith(prefix) ? err.message.slice(prefix.length) : err.message;
            throw new ConfigError(`pluginConfig.${c.uri}.${err.key}`, what, config.configFile);
          }
          throw err;
        }
      }
      const stateDir = path.join(config.root, 'plugins', c.uri);
      await ensureDir(stateDir);
      const ctx: PluginContext<unknown> = {
        uri: c.uri,
        config: pluginConfig,
        root: config.root,
        stateDir,
        container: container.createChildContainer(),
        log: log.child(c.uri),
        getSingle: api.getSingle,
        getAll: api.getAll,
      };
      impls.set(c.uri, await c.manifest.init(ctx));
      initOrder.push(c.uri);
      byType.set(c.manifest.type, [...(byType.get(c.manifest.type) ?? []), c.uri]);
    } catch (err) {
      if (err instanceof ConfigError) throw err;
      info.status = err instanceof SkipPlugin ? 'skipped' : 'failed';
      info.reason = err instanceof SkipPlugin ? err.reason : `init failed: ${(err as Error).message}`;
      // Called as a method: a class-based Logger needs its `this`.
      log[info.status === 'skipped' ? 'warn' : 'error'](`plugin ${info.status}`, { plugin: c.uri, reason: info.reason });
      if (config.requiredPlugins.includes(c.uri)) throw new PluginLoadError(`required plugin ${c.uri} ${info.status}: ${info.reason}`);
    }
  }
  for (const uri of config.requiredPlugins) {
    if (!impls.has(uri)) throw new PluginLoadError(`required plugin ${uri} is not available (${infos.find((i) => i.uri === uri)?.reason ?? 'not found'})`);
  }
  // Specific registries are consulted before the catch-all one.
  const regs = byType.get('registry');
  if (regs)
    byType.set(
      'registry',
      [...regs].sort((a, b) => Number((impls.get(a) as any)?.fallback ?? false) - Number((impls.get(b) as any)?.fallback ?? false)),
    );
  // Each extension point's implementations under its token, in slot order: what core resolves.
  for (const slot of SLOTS) {
    const chosen = slot.cardinality === 'single' ? [api.getSingle(slot.type)].filter((i) => i !== undefined) : api.getAll(slot.type);
    for (const impl of chosen) container.register(slot.token, { useValue: impl });
  }

  return {
    infos,
    ...api,
    get: <T>(uri: string) => impls.get(uri) as T | undefined,
    whyMissing(type: string): string {
      const choose = SINGLE_SLOTS[type];
      const uri = choose ? `${type}.${choose(config)}` : undefined;
      const info = infos.find((i) => (uri ? i.uri === uri : i.type === type));
      if (!info) return uri ? `no plugin ${uri} is installed` : `no ${type} plugin is installed`;
      return `${info.uri} ${info.status}${info.reason ? `: ${info.reason}` : ''}`;
    },
    uriOf: (impl) => [...impls].find(([, i]) => i === impl)?.[0],
    async closeAll() {
      for (const uri of [...initOrder].reverse()) {
        const impl = impls.get(uri) as { close?: () => Promise<void> | void } | undefined;
        try {
          await impl?.close?.();
        } catch (err) {
          log.error('plugin close failed', { plugin: uri, error: (err as Error).message });
        }
      }
    },
  };
}

/**
 * URIs that plugins which start anyway name in `requires`: a single-slot plugin among them starts
 * without being selected (a runtime that wraps runtime.native), and stays out of the slot.
 */
function requiredByUri(candidates: Candidate[], config: BerthConfig): Set<string> {
  const required = new Set<string>();
  for (const c of candidates) {
    if (disabledReason(c, config, new Set()) === undefined) for (const r of c.manifest.requires ?? []) if (r.includes('.')) required.add(r);
  }
  return required;
}

function disabledReason(c: Candidate, config: BerthConfig, required: Set<string>): string | undefined {
  if (config.disabledPlugins.includes(c.uri)) return 'disabled by config';
  const choose = SINGLE_SLOTS[c.manifest.type];
  if (choose && choose(config) !== c.manifest.id && !required.has(c.uri)) return `not selected (${c.manifest.type} is ${choose(config)})`;
  if (c.manifest.type === 'isolator' && !config.isolators.includes(c.manifest.id)) return 'not in config isolators';
  return undefined;
}
