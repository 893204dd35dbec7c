import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { container } from 'tsyringe';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError, SkipPlugin } from '../../core/contracts/errors';
import { PLUGIN_API_VERSION } from '../../core/contracts/plugin';
import type { Logger } from '../../core/contracts/types';
import { validateConfig } from '../../core/kernel/config';
import { PluginLoadError, loadPlugins, orderPlugins, resolvePluginSpecifier, resolveSlot } from '../../core/kernel/plugins';
import { IsolatorSlot, RegistrySlot, RuntimeSlot, StorageSlot, VolumeSlot, type Slot } from '../../core/contracts/slots';

/** A silent logger written as a class, so methods called without their `this` would break. */
class RecordingLogger implements Logger {
  readonly lines: string[] = [];
  constructor(private readonly name = 'test') {}
  debug(msg: string): void {
    this.lines.push(`debug ${this.name} ${msg}`);
  }
  info(msg: string): void {
    this.lines.push(`info ${this.name} ${msg}`);
  }
  warn(msg: string, fields?: Record<string, unknown>): void {
    this.lines.push(`warn ${this.name} ${msg} ${JSON.stringify(fields ?? {})}`);
  }
  error(msg: string, fields?: Record<string, unknown>): void {
    this.lines.push(`error ${this.name} ${msg} ${JSON.stringify(fields ?? {})}`);
  }
  child(): Logger {
    return this;
  }
}

describe('orderPlugins', () => {
  const p = (uri: string, requires?: string[]) => ({ uri, manifest: { type: uri.split('.')[0], requires } });
  const uris = (list: Array<{ uri: string }>) => list.map((x) => x.uri);

  it('puts what a plugin requires by type before it, keeping the rest in order', () => {
    const ordered = orderPlugins([p('runtime.native', ['storage', 'isolator']), p('isolator.ns'), p('storage.vfs'), p('isolator.cg'), p('misc.z')]);
    expect(uris(ordered)).toEqual(['storage.vfs', 'isolator.ns', 'isolator.cg', 'runtime.native', 'misc.z']);
  });

  it('puts what a plugin requires by URI before it', () => {
    const ordered = orderPlugins([p('a.one', ['b.two']), p('b.two', ['c.three']), p('c.three')]);
    expect(uris(ordered)).toEqual(['c.three', 'b.two', 'a.one']);
  });

  it('ignores requirements that are not present and a type requiring its own type', () => {
    expect(uris(orderPlugins([p('a.x', ['nothing.here', 'ghost']), p('a.y', ['a'])]))).toEqual(['a.x', 'a.y']);
  });

  it('a cycle throws naming it', () => {
    expect(() => orderPlugins([p('a.x', ['b.y']), p('b.y', ['a.x'])])).toThrow('plugin dependency cycle: a.x -> b.y -> a.x');
    expect(() => orderPlugins([p('c.z'), p('a.x', ['b']), p('b.y', ['c']), p('c.w', ['a.x'])])).toThrow(PluginLoadError);
    expect(() => orderPlugins([p('c.z'), p('a.x', ['b']), p('b.y', ['c']), p('c.w', ['a.x'])])).toThrow(/a\.x -> b\.y -> c\.w -> a\.x/);
    expect(() => orderPlugins([p('a.x', ['a.x'])])).toThrow('plugin dependency cycle: a.x -> a.x');
  });
});

/** What the test plugins can reach: injected through globalThis because they are plain .js files. */
interface Harness {
  SkipPlugin: typeof SkipPlugin;
  ConfigError: typeof ConfigError;
  inits: string[];
  contexts: Record<string, any>;
}
const harness = globalThis as unknown as { __berthPluginTest: Harness };

/** A plugin module as CommonJS source. `style` picks how the manifest is exported. */
function pluginSource(
  m: { type: string; id: string; requires?: string[]; defaults?: object; body?: string; parseConfig?: string; extra?: string },
  style: 'module.exports' | 'exports.default' | 'esModule' = 'module.exports',
): string {
  const manifest = `{
    type: ${JSON.stringify(m.type)},
    id: ${JSON.stringify(m.id)},
    requires: ${JSON.stringify(m.requires ?? [])},
    defaults: ${JSON.stringify(m.defaults ?? {})},
    ${m.parseConfig ? `parseConfig(raw) { const h = globalThis.__berthPluginTest; ${m.parseConfig} },` : ''}
    ${m.extra ?? ''}
    async init(ctx) {
      const h = globalThis.__berthPluginTest;
      h.inits.push(ctx.uri);
      h.contexts[ctx.uri] = ctx;
      ${m.body ?? `return { uri: ctx.uri };`}
    },
  }`;
  if (style === 'module.exports') return `module.exports = ${manifest};\n`;
  if (style === 'exports.default') return `exports.default = ${manifest};\n`;
  return `Object.defineProperty(exports, '__esModule', { value: true });\nexports.default = ${manifest};\n`;
}

describe('loadPlugins', () => {
  let dir: string;
  let configDir: string;
  let root: string;
  let log: RecordingLogger;

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-plugins-'));
    configDir = path.join(dir, 'etc');
    root = path.join(dir, 'root');
    fs.mkdirSync(path.join(configDir, 'plugins'), { recursive: true });
    log = new RecordingLogger();
    harness.__berthPluginTest = { SkipPlugin, ConfigError, inits: [], contexts: {} };
  });
  afterEach(() => {
    fs.rmSync(dir, { recursive: true, force: true });
    delete (harness as Partial<typeof harness>).__berthPluginTest;
  });

  /** Write a plugin file under the config folder; returns its config entry (`./plugins/<name>.js`). */
  function writePlugin(name: string, source: string): string {
    fs.writeFileSync(path.join(configDir, 'plugins', `${name}.js`), source);
    return `./plugins/${name}.js`;
  }

  /** Install a plugin as a package: <configDir>/node_modules/<pkg>/{package.json,index.js}. */
  function writePackage(pkg: string, source: string): string {
    const d = path.join(configDir, 'node_modules', pkg);
    fs.mkdirSync(d, { recursive: true });
    fs.writeFileSync(path.join(d, 'package.json'), JSON.stringify({ name: pkg, version: '1.0.0', main: 'index.js' }));
    fs.writeFileSync(path.join(d, 'index.js'), source);
    return pkg;
  }

  function config(raw: Record<string, unknown>) {
    return validateConfig({ root, ...raw }, path.join(configDir, 'berth.config.json'));
  }

  const load = (raw: Record<string, unknown>, builtins: string[] = []) => loadPlugins({ config: config(raw), container: container.createChildContainer(), log, builtins });

  it('loads plugins by path and by package name, in both export styles, and reports each status', async () => {
    const skip = 'throw new h.SkipPlugin("kernel lacks overlayfs");';
    const plugins = [
      writePlugin('mem', pluginSource({ type: 'storage', id: 'mem', defaults: { size: 1 } })),
      writePlugin('other', pluginSource({ type: 'storage', id: 'other' }, 'exports.default')),
      writePlugin('ns', pluginSource({ type: 'isolator', id: 'ns', requires: ['storage'] }, 'esModule')),
      writePackage('berth-plugin-cg', pluginSource({ type: 'isolator', id: 'cg' })),
      writePlugin('unused', pluginSource({ type: 'isolator', id: 'unused' })),
      writePlugin('rt', pluginSource({ type: 'runtime', id: 'fake', requires: ['storage', 'isolator'], body: 'return { storage: ctx.getSingle("storage"), isolators: ctx.getAll("isolator") };' })),
      writePlugin('skipper', pluginSource({ type: 'misc', id: 'skipper', body: skip })),
      writePlugin('broken', pluginSource({ type: 'misc', id: 'broken', body: 'throw new Error("boom");' })),
      writePlugin('off', pluginSource({ type: 'misc', id: 'off' })),
    ];
    const loaded = await load({
      plugins,
      storage: { driver: 'mem' },
      runtime: 'fake',
      isolators: ['cg', 'ns'],
      disabledPlugins: ['misc.off'],
      pluginConfig: { 'storage.mem': { size: 5, extra: true } },
    });

    const status = Object.fromEntries(loaded.infos.map((i) => [i.uri, [i.status, i.reason ?? '']]));
    expect(status).toEqual({
      'storage.mem': ['ok', ''],
      'storage.other': ['disabled', 'not selected (storage is mem)'],
      'isolator.ns': ['ok', ''],
      'isolator.cg': ['ok', ''],
      'isolator.unused': ['disabled', 'not in config isolators'],
      'runtime.fake': ['ok', ''],
      'misc.skipper': ['skipped', 'kernel lacks overlayfs'],
      'misc.broken': ['failed', 'init failed: boom'],
      'misc.off': ['disabled', 'disabled by config'],
    });
    expect(loaded.infos.find((i) => i.uri === 'isolator.cg')!.source).toBe('berth-plugin-cg');
    expect(loaded.infos.find((i) => i.uri === 'storage.mem')!.source).toBe('./plugins/mem.js');

    // Disabled plugins are never initialised; requirements come first.
    const inits = harness.__berthPluginTest.inits;
    expect(inits).not.toContain('storage.other');
    expect(inits).not.toContain('misc.off');
    expect(inits.indexOf('storage.mem')).toBeLessThan(inits.indexOf('isolator.ns'));
    expect(inits.indexOf('isolator.ns')).toBeLessThan(inits.indexOf('runtime.fake'));
    expect(inits.indexOf('isolator.cg')).toBeLessThan(inits.indexOf('runtime.fake'));

    // Look-ups: the selected single slot; isolators in config order, as seen from a plugin's init too.
    expect(loaded.getSingle<{ uri: string }>('storage')).toEqual({ uri: 'storage.mem' });
    expect(loaded.getAll<{ uri: string }>('isolator').map((i) => i.uri)).toEqual(['isolator.cg', 'isolator.ns']);
    const rt = loaded.getSingle<{ storage: { uri: string }; isolators: Array<{ uri: string }> }>('runtime')!;
    expect(rt.storage.uri).toBe('storage.mem');
    expect(rt.isolators.map((i) => i.uri)).toEqual(['isolator.cg', 'isolator.ns']);
    expect(loaded.getAll('misc')).toEqual([]);

    // The context: merged config, own 0700 state dir, a child container.
    const ctx = harness.__berthPluginTest.contexts['storage.mem'];
    expect(ctx.config).toEqual({ size: 5, extra: true });
    expect(ctx.root).toBe(root);
    expect(ctx.stateDir).toBe(path.join(root, 'plugins', 'storage.mem'));
    expect(fs.statSync(ctx.stateDir).mode & 0o777).toBe(0o700);
    expect(ctx.container).not.toBe(harness.__berthPluginTest.contexts['isolator.ns'].container);
    expect(typeof ctx.container.register).toBe('function');
    expect(fs.existsSync(path.join(root, 'plugins', 'storage.other'))).toBe(false);

    // Skips are warnings, failures errors, each naming the plugin.
    expect(log.lines.some((l) => l.startsWith('warn') && l.includes('misc.skipper'))).toBe(true);
    expect(log.lines.some((l) => l.startsWith('error') && l.includes('misc.broken') && l.includes('boom'))).toBe(true);
  });

  it('registries get the config registries; specific ones come before the fallback', async () => {
    const plugins = [
      writePlugin('catchall', pluginSource({ type: 'registry', id: 'catchall', body: 'return { uri: ctx.uri, fallback: true };' })),
      writePlugin('special', pluginSource({ type: 'registry', id: 'special', body: 'return { uri: ctx.uri, fallback: false };' })),
    ];
    const loaded = await load({ plugins, registries: { 'localhost:5000': { insecure: true } } });
    expect(loaded.getAll<{ uri: string }>('registry').map((r) => r.uri)).toEqual(['registry.special', 'registry.catchall']);
    expect(harness.__berthPluginTest.contexts['registry.special'].config.registries).toEqual({ 'localhost:5000': { insecure: true, mirrors: [] } });
  });

  it('registers every initialised plugin under its slot token, in slot order, and closes them in reverse init order', async () => {
    // Each implementation records its close in the shared list.
    const impl =
      'return { uri: ctx.uri, name: ctx.uri.split(".")[1], fallback: ctx.uri === "registry.catchall", close: async () => { h.inits.push("close " + ctx.uri); if (ctx.uri === "isolator.cg") throw new Error("busy"); } };';
    const plugins = [
      writePlugin('mem', pluginSource({ type: 'storage', id: 'mem', body: impl })),
      writePlugin('other', pluginSource({ type: 'storage', id: 'other', body: impl })),
      writePlugin('ns', pluginSource({ type: 'isolator', id: 'ns', requires: ['storage'], body: impl })),
      writePlugin('cg', pluginSource({ type: 'isolator', id: 'cg', body: impl })),
      writePlugin('rt', pluginSource({ type: 'runtime', id: 'fake', requires: ['isolator'], body: impl })),
      writePlugin('catchall', pluginSource({ type: 'registry', id: 'catchall', body: impl })),
      writePlugin('special', pluginSource({ type: 'registry', id: 'special', body: impl })),
      writePlugin('local', pluginSource({ type: 'volume', id: 'local', body: impl })),
    ];
    const di = container.createChildContainer();
    const loaded = await loadPlugins({ config: config({ plugins, storage: { driver: 'mem' }, runtime: 'fake', isolators: ['cg', 'ns'] }), container: di, log, builtins: [] });
    const uris = (slot: Slot<unknown>) => resolveSlot(di, slot).map((i) => (i as { uri: string }).uri);
    expect(uris(StorageSlot)).toEqual(['storage.mem']);
    expect(uris(RuntimeSlot)).toEqual(['runtime.fake']);
    expect(uris(IsolatorSlot)).toEqual(['isolator.cg', 'isolator.ns']);
    expect(uris(RegistrySlot)).toEqual(['registry.special', 'registry.catchall']);
    expect(uris(VolumeSlot)).toEqual(['volume.local']);
    // Resolved from a plugin's child container too, and nothing under a slot nobody filled.
    expect(resolveSlot(harness.__berthPluginTest.contexts['runtime.fake'].container, IsolatorSlot)).toHaveLength(2);
    expect(resolveSlot(container.createChildContainer(), StorageSlot)).toEqual([]);
    expect(loaded.uriOf(resolveSlot(di, IsolatorSlot)[1])).toBe('isolator.ns');

    const inits = harness.__berthPluginTest.inits.filter((l) => !l.startsWith('close'));
    await loaded.closeAll();
    const closes = harness.__berthPluginTest.inits.filter((l) => l.startsWith('close')).map((l) => l.slice('close '.length));
    expect(closes).toEqual([...inits].reverse());
    expect(closes).not.toContain('storage.other');
    expect(log.lines.some((l) => l.startsWith('error') && l.includes('isolator.cg') && l.includes('busy'))).toBe(true);
  });

  it('a single-slot plugin another requires by URI starts outside its slot; unrequired ones stay disabled', async () => {
    const impl = 'return { uri: ctx.uri, name: ctx.uri.split(".")[1], inner: ctx.getAll("runtime").map((r) => r.uri) };';
    const plugins = [
      writePlugin('native', pluginSource({ type: 'runtime', id: 'native', body: impl })),
      writePlugin('other', pluginSource({ type: 'runtime', id: 'other', body: impl })),
      writePlugin('timed', pluginSource({ type: 'runtime', id: 'timed', requires: ['runtime.native'], body: impl })),
    ];
    const di = container.createChildContainer();
    const loaded = await loadPlugins({ config: config({ plugins, runtime: 'timed' }), container: di, log, builtins: [] });
    const status = Object.fromEntries(loaded.infos.map((i) => [i.uri, i.status]));
    expect(status).toEqual({ 'runtime.native': 'ok', 'runtime.other': 'disabled', 'runtime.timed': 'ok' });
    expect(harness.__berthPluginTest.inits).toEqual(['runtime.native', 'runtime.timed']);
    expect(resolveSlot(di, RuntimeSlot).map((i) => (i as { uri: string }).uri)).toEqual(['runtime.timed']);
    expect(loaded.get<{ inner: string[] }>('runtime.timed')?.inner).toEqual(['runtime.native']);
    // Not required by anything that starts: a required-by-URI link from a disabled plugin does not count.
    harness.__berthPluginTest.inits = [];
    const again = await load({ plugins, runtime: 'other' });
    expect(Object.fromEntries(again.infos.map((i) => [i.uri, i.status]))).toEqual({ 'runtime.native': 'disabled', 'runtime.other': 'ok', 'runtime.timed': 'disabled' });
  });

  it('loads built-ins given as module paths and marks them builtin', async () => {
    const file = path.join(dir, 'builtin-vfs.js');
    fs.writeFileSync(file, pluginSource({ type: 'storage', id: 'vfs' }));
    const loaded = await load({ storage: { driver: 'vfs' } }, [file]);
    expect(loaded.infos).toEqual([{ uri: 'storage.vfs', type: 'storage', id: 'vfs', status: 'ok', source: 'builtin' }]);
    expect(loaded.getSingle('storage')).toEqual({ uri: 'storage.vfs' });
  });

  it('a parseConfig ConfigError names pluginConfig.<uri>.<key> and the config file', async () => {
    const plugins = [
      writePlugin(
        'picky',
        pluginSource({
          type: 'runtime',
          id: 'picky',
          defaults: { binary: 'runc' },
          parseConfig: 'if (typeof raw.binary !== "string") throw new h.ConfigError("binary", "expected a string"); return raw;',
        }),
      ),
    ];
    const err = await load({ plugins, runtime: 'picky', pluginConfig: { 'runtime.picky': { binary: 7 } } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).key).toBe('pluginConfig.runtime.picky.binary');
    expect((err as ConfigError).message).toBe(`${path.join(configDir, 'berth.config.json')}: pluginConfig.runtime.picky.binary: expected a string`);
    expect(harness.__berthPluginTest.inits).toEqual([]);
  });

  it('a parseConfig ConfigError whose key holds a host:port keeps the whole key and message', async () => {
    const plugins = [
      writePlugin(
        'reg',
        pluginSource({
          type: 'registry',
          id: 'reg',
          parseConfig: 'throw new h.ConfigError("registries.[::1]:5000.mirrors[0]", "expected a host: got nothing", "/elsewhere/file.json");',
        }),
      ),
    ];
    const err = (await load({ plugins }).catch((e: unknown) => e)) as ConfigError;
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.message).toBe(`${path.join(configDir, 'berth.config.json')}: pluginConfig.registry.reg.registries.[::1]:5000.mirrors[0]: expected a host: got nothing`);
  });

  it('parseConfig output is what init receives', async () => {
    const plugins = [writePlugin('parsed', pluginSource({ type: 'misc', id: 'parsed', defaults: { n: '3' }, parseConfig: 'return { n: Number(raw.n) * 2 };' }))];
    await load({ plugins });
    expect(harness.__berthPluginTest.contexts['misc.parsed'].config).toEqual({ n: 6 });
  });

  it('a required plugin that fails aborts loading', async () => {
    const plugins = [writePlugin('broken', pluginSource({ type: 'misc', id: 'broken', body: 'throw new Error("boom");' }))];
    await expect(load({ plugins, requiredPlugins: ['misc.broken'] })).rejects.toThrow(/required plugin misc\.broken failed: init failed: boom/);
  });

  it('a required plugin that is disabled or absent aborts loading', async () => {
    const plugins = [writePlugin('ok', pluginSource({ type: 'misc', id: 'ok' }))];
    await expect(load({ plugins, requiredPlugins: ['misc.ok'], disabledPlugins: ['misc.ok'] })).rejects.toThrow(/required plugin misc\.ok is not available \(disabled by config\)/);
    await expect(load({ plugins, requiredPlugins: ['misc.ghost'] })).rejects.toThrow(/required plugin misc\.ghost is not available \(not found\)/);
  });

  it('two plugins claiming one URI are rejected naming both', async () => {
    const plugins = [writePlugin('one', pluginSource({ type: 'misc', id: 'same' })), writePackage('berth-plugin-same', pluginSource({ type: 'misc', id: 'same' }))];
    await expect(load({ plugins })).rejects.toThrow('two plugins claim misc.same: ./plugins/one.js and berth-plugin-same');
  });

  it('a module that cannot be loaded is reported as failed under its config entry', async () => {
    const plugins = [
      './plugins/missing.js',
      'berth-plugin-not-installed',
      writePlugin('not-a-manifest', 'module.exports = { hello: 1 };'),
      writePlugin('bad-id', pluginSource({ type: 'misc', id: 'Bad_Id' })),
      writePlugin('future', pluginSource({ type: 'misc', id: 'future', extra: 'apiVersion: 2,' })),
      writePlugin('fine', pluginSource({ type: 'misc', id: 'fine', extra: 'apiVersion: 1,' })),
    ];
    const loaded = await load({ plugins });
    const failed = loaded.infos.filter((i) => i.status === 'failed');
    expect(failed.map((i) => i.uri)).toEqual(['./plugins/missing.js', 'berth-plugin-not-installed', './plugins/not-a-manifest.js', './plugins/bad-id.js', './plugins/future.js']);
    expect(failed[1].reason).toContain('berth-plugin-not-installed');
    expect(failed[2].reason).toMatch(/does not default-export a manifest/);
    expect(failed[3].reason).toMatch(/lowercase/);
    expect(failed[4].reason).toBe(`plugin ./plugins/future.js was written for berth/plugin 2.x; this berthd has ${PLUGIN_API_VERSION}`);
    expect(loaded.infos.find((i) => i.uri === 'misc.fine')!.status).toBe('ok');
  });

  it('a plugin dependency cycle stops loading', async () => {
    const plugins = [writePlugin('x', pluginSource({ type: 'a', id: 'x', requires: ['b.y'] })), writePlugin('y', pluginSource({ type: 'b', id: 'y', requires: ['a.x'] }))];
    await expect(load({ plugins })).rejects.toThrow('plugin dependency cycle: a.x -> b.y -> a.x');
    expect(harness.__berthPluginTest.inits).toEqual([]);
  });

  it('whyMissing explains an empty single slot', async () => {
    const plugins = [writePlugin('s', pluginSource({ type: 'storage', id: 'overlay', body: 'throw new h.SkipPlugin("no overlayfs");' }))];
    const loaded = await load({ plugins, storage: { driver: 'overlay' } });
    expect(loaded.getSingle('storage')).toBeUndefined();
    expect(loaded.whyMissing('storage')).toBe('storage.overlay skipped: no overlayfs');
    expect(loaded.whyMissing('runtime')).toBe('no plugin runtime.native is installed');
  });

  it('resolvePluginSpecifier resolves paths from the config folder and packages from node_modules there', () => {
    writePlugin('here', pluginSource({ type: 'misc', id: 'here' }));
    writePackage('berth-plugin-pkg', pluginSource({ type: 'misc', id: 'pkg' }));
    expect(resolvePluginSpecifier('./plugins/here.js', configDir)).toBe(path.join(configDir, 'plugins', 'here.js'));
    expect(resolvePluginSpecifier('berth-plugin-pkg', configDir)).toBe(path.join(configDir, 'node_modules', 'berth-plugin-pkg', 'index.js'));
    expect(() => resolvePluginSpecifier('berth-plugin-nope', configDir)).toThrow(/berth-plugin-nope/);
  });
});
