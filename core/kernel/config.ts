/**
 * berth's configuration: found by cosmiconfig (module name `berth`), or named by --config /
 * BERTH_CONFIG, then validated key by key. A bad value is a ConfigError naming the file and the
 * key, and nothing starts.
 */
import * as path from 'node:path';
import { ConfigError } from '../contracts/errors';
import { DEFAULT_MAX_LAYER_SIZE } from '../layers/compression';
import { DEFAULT_LOG_DRIVER, checkLogConfig } from '../containers/log-config';

export interface RegistryHostConfig {
  insecure?: boolean;
  mirrors?: string[];
}

/** The Kubernetes CRI server (core/cri): its own socket, off unless enabled. */
export interface CriConfig {
  enabled: boolean;
  socket: string;
  /** Pod networks: the first CNI configuration here (lexical order), as containerd reads it. */
  cniConfDir: string;
  /** Where the CNI plugin binaries are. */
  cniBinDir: string;
}

export interface BerthConfig {
  root: string;
  socket: string;
  storage: { driver: string };
  isolators: string[];
  runtime: string;
  registries: Record<string, RegistryHostConfig>;
  defaultRegistry: string;
  /** Third-party plugin modules: paths (resolved from the config file's folder) or package names. */
  plugins: string[];
  /** Plugins that must initialise, or berthd refuses to start. */
  requiredPlugins: string[];
  /** Plugin URIs to leave out. */
  disabledPlugins: string[];
  pluginConfig: Record<string, Record<string, unknown>>;
  /**
   * Bytes one layer may unpack to (pull, load, import, build); past it the layer is refused.
   * A number of bytes or a string with a unit (`'64GiB'`, `'512MiB'`); default 64 GiB.
   */
  maxLayerSize: number;
  /** Containers' default log driver and options (daemon.json's `log-driver`, `log-opts`). */
  logDriver: string;
  logOpts: Record<string, string>;
  cri: CriConfig;
  /** Folder third-party plugin paths are resolved from (the config file's folder, else cwd). */
  configDir: string;
  /** The config file in use, if any. */
  configFile?: string;
}

export const DEFAULT_CONFIG: Omit<BerthConfig, 'configDir'> = {
  root: '/var/lib/berth',
  socket: '/run/berth/berth.sock',
  storage: { driver: 'overlay' },
  isolators: ['namespaces', 'network', 'cgroups', 'seccomp'],
  runtime: 'native',
  registries: {},
  defaultRegistry: 'docker.io',
  plugins: [],
  requiredPlugins: [],
  disabledPlugins: [],
  pluginConfig: {},
  maxLayerSize: DEFAULT_MAX_LAYER_SIZE,
  logDriver: DEFAULT_LOG_DRIVER,
  logOpts: {},
  cri: { enabled: false, socket: '/run/berth/cri.sock', cniConfDir: '/etc/cni/net.d', cniBinDir: '/usr/lib/cni' },
};

/** daemon.json's spellings, accepted as they are so its log settings can be copied over. */
const ALIASES: Record<string, keyof typeof DEFAULT_CONFIG> = { 'log-driver': 'logDriver', 'log-opts': 'logOpts' };

const KNOWN_KEYS = new Set([...Object.keys(DEFAULT_CONFIG), ...Object.keys(ALIASES)]);

/** Command-line and environment overrides; they win over the file. */
export interface ConfigOverrides {
  root?: string;
  socket?: string;
  storageDriver?: string;
  /** --cri-socket: serve the CRI there (enables it). */
  criSocket?: string;
}

type Raw = Record<string, unknown>;

const isObject = (v: unknown): v is Raw => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Validate a raw config object. `file` is only used in error messages. */
export function validateConfig(raw: unknown, file?: string, overrides: ConfigOverrides = {}): BerthConfig {
  const fail = (key: string, msg: string) => new ConfigError(key, msg, file);
  if (raw === null || raw === undefined) raw = {};
  if (!isObject(raw)) throw fail('(top level)', `expected an object, got ${describe(raw)}`);
  for (const key of Object.keys(raw)) {
    if (!KNOWN_KEYS.has(key)) throw fail(key, `unknown key (known: ${[...KNOWN_KEYS].join(', ')})`);
  }
  const given = raw;
  /** The value under a key or its daemon.json spelling, and the name it was given under. */
  const aliased = (key: keyof typeof DEFAULT_CONFIG): [unknown, string] => {
    const alias = Object.keys(ALIASES).find((a) => ALIASES[a] === key)!;
    if (alias in given && key in given) throw fail(alias, `both ${alias} and ${key} are set: keep one`);
    return alias in given ? [given[alias], alias] : [given[key], key];
  };
  const str = (key: string, v: unknown, fallback: string): string => {
    if (v === undefined) return fallback;
    if (typeof v !== 'string' || !v) throw fail(key, `expected a non-empty string, got ${describe(v)}`);
    return v;
  };
  const strList = (key: string, v: unknown, fallback: string[]): string[] => {
    if (v === undefined) return [...fallback];
    if (!Array.isArray(v)) throw fail(key, `expected a list of strings, got ${describe(v)}`);
    v.forEach((item, i) => {
      if (typeof item !== 'string' || !item) throw fail(`${key}[${i}]`, `expected a non-empty string, got ${describe(item)}`);
    });
    return [...(v as string[])];
  };
  const absPath = (key: string, v: string): string => {
    if (!path.isAbsolute(v)) throw fail(key, `expected an absolute path, got "${v}"`);
    return path.resolve(v); // normalised, without a trailing slash
  };

  let storage = DEFAULT_CONFIG.storage;
  if (raw.storage !== undefined) {
    if (!isObject(raw.storage)) throw fail('storage', `expected an object like { driver: 'overlay' }, got ${describe(raw.storage)}`);
    for (const k of Object.keys(raw.storage)) if (k !== 'driver') throw fail(`storage.${k}`, 'unknown key (known: driver)');
    storage = { driver: str('storage.driver', raw.storage.driver, DEFAULT_CONFIG.storage.driver) };
  }

  const registries: Record<string, RegistryHostConfig> = {};
  if (raw.registries !== undefined) {
    if (!isObject(raw.registries)) throw fail('registries', `expected an object keyed by registry host, got ${describe(raw.registries)}`);
    for (const [host, v] of Object.entries(raw.registries)) {
      const key = `registries.${host}`;
      if (!isObject(v)) throw fail(key, `expected an object like { insecure: true, mirrors: [...] }, got ${describe(v)}`);
      for (const k of Object.keys(v)) if (k !== 'insecure' && k !== 'mirrors') throw fail(`${key}.${k}`, 'unknown key (known: insecure, mirrors)');
      if (v.insecure !== undefined && typeof v.insecure !== 'boolean') throw fail(`${key}.insecure`, `expected true or false, got ${describe(v.insecure)}`);
      registries[host] = { insecure: v.insecure as boolean | undefined, mirrors: strList(`${key}.mirrors`, v.mirrors, []) };
    }
  }

  const pluginConfig: Record<string, Record<string, unknown>> = {};
  if (raw.pluginConfig !== undefined) {
    if (!isObject(raw.pluginConfig)) throw fail('pluginConfig', `expected an object keyed by plugin URI, got ${describe(raw.pluginConfig)}`);
    for (const [uri, v] of Object.entries(raw.pluginConfig)) {
      if (!/^[a-z0-9-]+\.[a-z0-9-]+$/i.test(uri)) throw fail(`pluginConfig.${uri}`, 'expected a plugin URI like "runtime.oci"');
      if (!isObject(v)) throw fail(`pluginConfig.${uri}`, `expected an object, got ${describe(v)}`);
      pluginConfig[uri] = v;
    }
  }

  const maxLayerSize = raw.maxLayerSize === undefined ? DEFAULT_MAX_LAYER_SIZE : byteSize(raw.maxLayerSize);
  if (maxLayerSize === undefined) throw fail('maxLayerSize', `expected a positive number of bytes or a size like "64GiB", got ${describe(raw.maxLayerSize)}`);
  const [rawDriver, driverKey] = aliased('logDriver');
  const [rawOpts, optsKey] = aliased('logOpts');
  const logDriver = str(driverKey, rawDriver, DEFAULT_CONFIG.logDriver);
  if (rawOpts !== undefined && !isObject(rawOpts)) throw fail(optsKey, `expected an object of strings like { "max-size": "10m" }, got ${describe(rawOpts)}`);
  const logOpts = { ...(rawOpts as Record<string, string> | undefined) };
  checkLogConfig({ Type: logDriver, Config: logOpts }, (key, msg) => fail(key === 'Type' ? driverKey : `${optsKey}.${key}`, msg));
  let cri = { ...DEFAULT_CONFIG.cri };
  if (raw.cri !== undefined) {
    if (!isObject(raw.cri)) throw fail('cri', `expected an object like { enabled: true, socket: '/run/berth/cri.sock' }, got ${describe(raw.cri)}`);
    const known = Object.keys(cri);
    for (const k of Object.keys(raw.cri)) if (!known.includes(k)) throw fail(`cri.${k}`, `unknown key (known: ${known.join(', ')})`);
    if (raw.cri.enabled !== undefined && typeof raw.cri.enabled !== 'boolean') throw fail('cri.enabled', `expected true or false, got ${describe(raw.cri.enabled)}`);
    const abs = (key: keyof CriConfig & string) => absPath(`cri.${key}`, str(`cri.${key}`, (raw.cri as Record<string, unknown>)[key], cri[key] as string));
    cri = { enabled: raw.cri.enabled === true, socket: abs('socket'), cniConfDir: abs('cniConfDir'), cniBinDir: abs('cniBinDir') };
  }
  if (overrides.criSocket) cri = { ...cri, enabled: true, socket: path.resolve(overrides.criSocket) };

  const configDir = file ? path.dirname(path.resolve(file)) : process.cwd();
  // Command-line paths are relative to the working directory; a relative path in a config file is
  // ambiguous (cwd of whoever starts berthd), so it is refused rather than silently resolved.
  const root = overrides.root ? path.resolve(overrides.root) : absPath('root', str('root', raw.root, DEFAULT_CONFIG.root));
  const socket = overrides.socket ? path.resolve(overrides.socket) : absPath('socket', str('socket', raw.socket, DEFAULT_CONFIG.socket));
  return {
    root,
    socket,
    storage: overrides.storageDriver ? { driver: overrides.storageDriver } : storage,
    isolators: strList('isolators', raw.isolators, DEFAULT_CONFIG.isolators),
    runtime: str('runtime', raw.runtime, DEFAULT_CONFIG.runtime),
    registries,
    defaultRegistry: str('defaultRegistry', raw.defaultRegistry, DEFAULT_CONFIG.defaultRegistry),
    plugins: strList('plugins', raw.plugins, []),
    requiredPlugins: strList('requiredPlugins', raw.requiredPlugins, []),
    disabledPlugins: strList('disabledPlugins', raw.disabledPlugins, []),
    pluginConfig,
    maxLayerSize,
    logDriver,
    logOpts,
    cri,
    configDir,
    configFile: file,
  };
}

const SIZE_UNITS: Record<string, number> = { B: 1, kB: 1e3, MB: 1e6, GB: 1e9, TB: 1e12, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3, TiB: 1024 ** 4 };

/** `1048576`, `'512MiB'`, `'64 GiB'`, `'1GB'` as bytes; undefined when it is none of those. */
function byteSize(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isSafeInteger(v) && v > 0 ? v : undefined;
  if (typeof v !== 'string') return undefined;
  const m = /^(\d+(?:\.\d+)?)\s*([a-zA-Z]*)$/.exec(v.trim());
  const unit = m && SIZE_UNITS[m[2] || 'B'];
  if (!m || !unit) return undefined;
  const bytes = Math.floor(Number(m[1]) * unit);
  return bytes > 0 ? bytes : undefined;
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'object') return 'an object';
  return `${typeof v} ${String(v)}`;
}

/**
 * Find and load the config: `file` (from --config or BERTH_CONFIG) when given, else cosmiconfig's
 * search from the working directory, else /etc/berth. No file at all means the defaults.
 */
export async function loadConfig(file?: string, overrides: ConfigOverrides = {}): Promise<BerthConfig> {
  const { cosmiconfig, getDefaultSearchPlaces } = await import('cosmiconfig');
  // cosmiconfig's defaults have berth.config.{js,ts,cjs,mjs} but not the JSON and YAML forms.
  const explorer = cosmiconfig('berth', {
    searchPlaces: [...getDefaultSearchPlaces('berth'), 'berth.config.json', 'berth.config.yaml', 'berth.config.yml'],
  });
  let result;
  try {
    if (file) {
      result = await explorer.load(path.resolve(file));
    } else {
      result = (await explorer.search(process.cwd())) ?? (await explorer.search('/etc/berth'));
    }
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ENOENT') throw new ConfigError('--config', `config file not found: ${file}`, file);
    throw new ConfigError('(file)', `cannot read config: ${e.message}`, file ?? e.path);
  }
  return validateConfig(result?.config, result?.filepath, overrides);
}
