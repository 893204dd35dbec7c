import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ConfigError } from '../../core/contracts/errors';
import { DEFAULT_CONFIG, loadConfig, validateConfig } from '../../core/kernel/config';

const FILE = '/etc/berth/berth.config.json';

/** The ConfigError thrown by `fn`; fails the test when nothing (or something else) is thrown. */
function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('validateConfig', () => {
  it('accepts nothing at all and yields the defaults', () => {
    for (const raw of [undefined, null, {}]) {
      const cfg = validateConfig(raw, FILE);
      expect(cfg).toMatchObject(DEFAULT_CONFIG);
      expect(cfg.configDir).toBe('/etc/berth');
      expect(cfg.configFile).toBe(FILE);
    }
    // Without a file, third-party plugin paths resolve from the working directory.
    expect(validateConfig({}).configDir).toBe(process.cwd());
  });

  it('accepts the full example from the design notes', () => {
    const cfg = validateConfig(
      {
        root: '/var/lib/berth-test/',
        socket: '/run/berth-test/berth.sock',
        storage: { driver: 'vfs' },
        isolators: ['namespaces'],
        runtime: 'oci',
        registries: { 'localhost:5000': { insecure: true }, 'docker.io': { mirrors: ['127.0.0.1:5000'] } },
        defaultRegistry: '127.0.0.1:5000',
        plugins: ['./my-plugin.js', 'berth-plugin-x'],
        requiredPlugins: ['storage.vfs'],
        disabledPlugins: ['isolator.cgroups'],
        pluginConfig: { 'runtime.oci': { binary: 'runc' } },
        cri: { enabled: true, socket: '/run/berth-test/cri.sock' },
      },
      FILE,
    );
    expect(cfg).toEqual({
      root: '/var/lib/berth-test',
      socket: '/run/berth-test/berth.sock',
      storage: { driver: 'vfs' },
      isolators: ['namespaces'],
      runtime: 'oci',
      registries: { 'localhost:5000': { insecure: true, mirrors: [] }, 'docker.io': { insecure: undefined, mirrors: ['127.0.0.1:5000'] } },
      defaultRegistry: '127.0.0.1:5000',
      plugins: ['./my-plugin.js', 'berth-plugin-x'],
      requiredPlugins: ['storage.vfs'],
      disabledPlugins: ['isolator.cgroups'],
      pluginConfig: { 'runtime.oci': { binary: 'runc' } },
      maxLayerSize: 64 * 1024 ** 3,
      logDriver: 'json-file',
      logOpts: {},
      cri: { enabled: true, socket: '/run/berth-test/cri.sock', cniConfDir: '/etc/cni/net.d', cniBinDir: '/usr/lib/cni' },
      configDir: '/etc/berth',
      configFile: FILE,
    });
  });

  it('reads maxLayerSize as bytes or as a size with a unit, and names the key when it is neither', () => {
    expect(validateConfig({ maxLayerSize: 1048576 }, FILE).maxLayerSize).toBe(1048576);
    expect(validateConfig({ maxLayerSize: '512MiB' }, FILE).maxLayerSize).toBe(512 * 1024 ** 2);
    expect(validateConfig({ maxLayerSize: '64 GiB' }, FILE).maxLayerSize).toBe(64 * 1024 ** 3);
    expect(validateConfig({ maxLayerSize: '2GB' }, FILE).maxLayerSize).toBe(2e9);
    for (const bad of [0, -5, 1.5, '12 parsecs', 'lots', true]) {
      const err = configError(() => validateConfig({ maxLayerSize: bad }, FILE));
      expect(err.key).toBe('maxLayerSize');
      expect(err.message).toMatch(/expected a positive number of bytes or a size like "64GiB"/);
    }
  });

  it('lets command-line overrides win, resolving relative paths from the working directory', () => {
    const cfg = validateConfig({ root: '/a', socket: '/b.sock', storage: { driver: 'overlay' } }, FILE, {
      root: 'rel/root',
      socket: '/tmp/x.sock',
      storageDriver: 'vfs',
    });
    expect(cfg.root).toBe(path.resolve('rel/root'));
    expect(cfg.socket).toBe('/tmp/x.sock');
    expect(cfg.storage.driver).toBe('vfs');
  });

  it('keeps the CRI off unless the file or --cri-socket enables it', () => {
    const cni = { cniConfDir: '/etc/cni/net.d', cniBinDir: '/usr/lib/cni' };
    expect(validateConfig({}).cri).toEqual({ enabled: false, socket: '/run/berth/cri.sock', ...cni });
    expect(validateConfig({ cri: { enabled: true } }).cri).toEqual({ enabled: true, socket: '/run/berth/cri.sock', ...cni });
    expect(validateConfig({ cri: { socket: '/tmp/x.sock' } }).cri).toEqual({ enabled: false, socket: '/tmp/x.sock', ...cni });
    expect(validateConfig({}, undefined, { criSocket: 'rel/cri.sock' }).cri).toEqual({ enabled: true, socket: path.resolve('rel/cri.sock'), ...cni });
  });

  it('reads the CRI CNI dirs and keeps them when --cri-socket enables the CRI', () => {
    const raw = { cri: { cniConfDir: '/tmp/net.d', cniBinDir: '/opt/cni/bin' } };
    expect(validateConfig(raw, undefined, { criSocket: '/tmp/c.sock' }).cri).toEqual({ enabled: true, socket: '/tmp/c.sock', cniConfDir: '/tmp/net.d', cniBinDir: '/opt/cni/bin' });
    expect(() => validateConfig({ cri: { cniConfDir: 'net.d' } })).toThrow(/cri\.cniConfDir/);
    expect(() => validateConfig({ cri: { cniDir: '/x' } })).toThrow(/cri\.cniDir.*known: enabled, socket, cniConfDir, cniBinDir/);
  });

  it('does not share the default lists between results', () => {
    const a = validateConfig({});
    a.isolators.push('mutated');
    expect(validateConfig({}).isolators).toEqual(['namespaces', 'network', 'cgroups', 'seccomp']);
  });

  // Every bad value names the file and the key.
  it.each<[string, unknown, string, RegExp]>([
    ['top level not an object', ['x'], '(top level)', /expected an object, got a list/],
    ['unknown top-level key', { storageDriver: 'vfs' }, 'storageDriver', /unknown key/],
    ['storage not an object', { storage: 'vfs' }, 'storage', /expected an object/],
    ['storage.driver not a string', { storage: { driver: 5 } }, 'storage.driver', /non-empty string, got number 5/],
    ['storage.driver empty', { storage: { driver: '' } }, 'storage.driver', /non-empty string/],
    ['unknown storage key', { storage: { driver: 'vfs', size: 1 } }, 'storage.size', /unknown key/],
    ['isolators not a list', { isolators: 'namespaces' }, 'isolators', /list of strings/],
    ['isolators entry not a string', { isolators: ['namespaces', 7] }, 'isolators[1]', /non-empty string/],
    ['runtime not a string', { runtime: true }, 'runtime', /non-empty string, got boolean true/],
    ['registries not an object', { registries: ['localhost:5000'] }, 'registries', /keyed by registry host/],
    ['registry entry not an object', { registries: { 'localhost:5000': true } }, 'registries.localhost:5000', /expected an object/],
    ['registries.host.insecure not boolean', { registries: { 'localhost:5000': { insecure: 'yes' } } }, 'registries.localhost:5000.insecure', /true or false, got "yes"/],
    ['registries.host.mirrors not a list', { registries: { 'docker.io': { mirrors: '127.0.0.1:5000' } } }, 'registries.docker.io.mirrors', /list of strings/],
    ['registries.host unknown key', { registries: { 'docker.io': { mirror: [] } } }, 'registries.docker.io.mirror', /unknown key/],
    ['pluginConfig bad URI', { pluginConfig: { oci: { binary: 'runc' } } }, 'pluginConfig.oci', /plugin URI like "runtime.oci"/],
    ['pluginConfig entry not an object', { pluginConfig: { 'runtime.oci': 'runc' } }, 'pluginConfig.runtime.oci', /expected an object/],
    ['relative root', { root: 'var/lib/berth' }, 'root', /absolute path, got "var\/lib\/berth"/],
    ['relative socket', { socket: './berth.sock' }, 'socket', /absolute path/],
    ['plugins not a list', { plugins: './p.js' }, 'plugins', /list of strings/],
    ['requiredPlugins entry empty', { requiredPlugins: [''] }, 'requiredPlugins[0]', /non-empty string/],
    ['cri not an object', { cri: true }, 'cri', /expected an object like \{ enabled: true/],
    ['cri.enabled not boolean', { cri: { enabled: 'yes' } }, 'cri.enabled', /true or false, got "yes"/],
    ['cri relative socket', { cri: { enabled: true, socket: 'cri.sock' } }, 'cri.socket', /absolute path/],
    ['cri unknown key', { cri: { endpoint: '/run/x.sock' } }, 'cri.endpoint', /unknown key \(known: enabled, socket, cniConfDir, cniBinDir\)/],
  ])('%s', (_what, raw, key, message) => {
    const err = configError(() => validateConfig(raw, FILE));
    expect(err.key).toBe(key);
    expect(err.file).toBe(FILE);
    expect(err.message.startsWith(`${FILE}: ${key}: `)).toBe(true);
    expect(err.message).toMatch(message);
  });
});

describe('loadConfig', () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-config-'));
  });
  afterAll(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** A fresh folder under the temp dir holding `files`. */
  function folder(name: string, files: Record<string, string>): string {
    const d = path.join(dir, name);
    fs.mkdirSync(d);
    for (const [f, text] of Object.entries(files)) fs.writeFileSync(path.join(d, f), text);
    return d;
  }

  it('loads berth.config.json named explicitly', async () => {
    const d = folder('json', { 'berth.config.json': JSON.stringify({ root: '/srv/berth', storage: { driver: 'vfs' } }) });
    const cfg = await loadConfig(path.join(d, 'berth.config.json'));
    expect(cfg.root).toBe('/srv/berth');
    expect(cfg.storage.driver).toBe('vfs');
    expect(cfg.configFile).toBe(path.join(d, 'berth.config.json'));
    expect(cfg.configDir).toBe(d);
  });

  it('loads .berthrc.yaml', async () => {
    const d = folder('yaml', { '.berthrc.yaml': 'runtime: oci\nisolators:\n  - namespaces\nregistries:\n  localhost:5000:\n    insecure: true\n' });
    const cfg = await loadConfig(path.join(d, '.berthrc.yaml'));
    expect(cfg.runtime).toBe('oci');
    expect(cfg.isolators).toEqual(['namespaces']);
    expect(cfg.registries['localhost:5000'].insecure).toBe(true);
  });

  it('loads the "berth" key of package.json', async () => {
    const d = folder('pkg', { 'package.json': JSON.stringify({ name: 'x', berth: { defaultRegistry: '127.0.0.1:5000' } }) });
    const cfg = await loadConfig(path.join(d, 'package.json'));
    expect(cfg.defaultRegistry).toBe('127.0.0.1:5000');
    expect(cfg.configDir).toBe(d);
  });

  it('names the file and the key when the file holds a bad value', async () => {
    const d = folder('bad', { 'berth.config.json': JSON.stringify({ registries: { 'localhost:5000': { insecure: 1 } } }) });
    const file = path.join(d, 'berth.config.json');
    const err = await loadConfig(file).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).file).toBe(file);
    expect((err as ConfigError).message).toContain(`${file}: registries.localhost:5000.insecure: expected true or false`);
  });

  it('a missing --config file is a clear error naming it', async () => {
    const missing = path.join(dir, 'nope', 'berth.config.json');
    const err = await loadConfig(missing).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).key).toBe('--config');
    expect((err as ConfigError).message).toContain(`config file not found: ${missing}`);
  });

  it('unparseable JSON is an error naming the file', async () => {
    const d = folder('broken', { 'berth.config.json': '{ "root": ' });
    const file = path.join(d, 'berth.config.json');
    const err = await loadConfig(file).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).message).toContain(file);
  });

  it('overrides apply on top of the file', async () => {
    const d = folder('override', { 'berth.config.json': JSON.stringify({ root: '/srv/berth' }) });
    const cfg = await loadConfig(path.join(d, 'berth.config.json'), { root: '/other', storageDriver: 'vfs' });
    expect(cfg.root).toBe('/other');
    expect(cfg.storage.driver).toBe('vfs');
  });

  // The search starts in process.cwd(). Workers must not chdir, so cwd is stubbed for the call.
  const searchFrom = async (cwd: string): Promise<{ root: string; configFile?: string; configDir: string }> => {
    const spy = vi.spyOn(process, 'cwd').mockReturnValue(cwd);
    try {
      return await loadConfig();
    } finally {
      spy.mockRestore();
    }
  };

  it('searches the working directory for berth.config.json', async () => {
    const d = folder('search-json', { 'berth.config.json': JSON.stringify({ root: '/srv/searched' }) });
    expect(await searchFrom(d)).toMatchObject({ root: '/srv/searched', configFile: path.join(d, 'berth.config.json'), configDir: d });
  });

  it('searches the working directory for .berthrc.yaml and package.json', async () => {
    const y = folder('search-yaml', { '.berthrc.yaml': 'root: /srv/yaml\n' });
    expect(await searchFrom(y)).toMatchObject({ root: '/srv/yaml', configFile: path.join(y, '.berthrc.yaml') });
    const b = folder('search-berth-yaml', { 'berth.config.yaml': 'root: /srv/berth-yaml\n' });
    expect(await searchFrom(b)).toMatchObject({ root: '/srv/berth-yaml', configFile: path.join(b, 'berth.config.yaml') });
    const p = folder('search-pkg', { 'package.json': JSON.stringify({ name: 'p', berth: { root: '/srv/pkg' } }) });
    expect(await searchFrom(p)).toMatchObject({ root: '/srv/pkg', configFile: path.join(p, 'package.json') });
  });

  it.skipIf(fs.existsSync('/etc/berth'))('a folder without any config yields the defaults', async () => {
    const d = folder('search-none', { 'package.json': JSON.stringify({ name: 'no-berth-key' }) });
    const cfg = await searchFrom(d);
    expect(cfg.configFile).toBeUndefined();
    expect(cfg.root).toBe(DEFAULT_CONFIG.root);
    expect(cfg.configDir).toBe(d);
  });
});
