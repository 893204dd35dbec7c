/**
 * Third-party plugins the way a user installs them: the example plugins (examples/) loaded by
 * path (relative to the config file) and as an npm package (`npm pack`, `npm install` of the
 * tarball, config names the package), with no registry server at all (images come from an OCI
 * layout made by umoci). Plus the failure paths: a plugin whose init throws is reported by
 * `berth plugins` with its URI and cause while berthd still starts; `requiredPlugins` refuses to
 * start; a bad plugin config names the key.
 */
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, promises as fs, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, runBerthd, expectOk, startDaemon, type RunningDaemon } from '../helpers/daemon';
import { isRoot, rootReason } from '../helpers/env';
import { buildBusyboxLayout, makeTempDir } from '../helpers/fixtures';

const execFileP = promisify(execFile);
const EXAMPLES = ['registry-layout', 'isolator-readonly', 'storage-reflink', 'runtime-timed'];

/** The examples compile with the root build (tsconfig includes examples/); rebuild when stale. */
function ensureExamplesBuilt(): void {
  const stale = EXAMPLES.some((name) => {
    const out = path.join(REPO_ROOT, 'dist', 'examples', name, 'index.js');
    if (!existsSync(out)) return true;
    const built = statSync(out).mtimeMs;
    return readdirSync(path.join(REPO_ROOT, 'examples', name)).some((f) => f.endsWith('.ts') && statSync(path.join(REPO_ROOT, 'examples', name, f)).mtimeMs > built);
  });
  if (stale) spawnSync('npx', ['tsc', '-p', '.'], { cwd: REPO_ROOT, encoding: 'utf8' });
}

/** A publishable package folder: the compiled JS, the example's package.json and README. */
async function stagePackage(name: string, into: string): Promise<string> {
  const dir = path.join(into, name);
  await fs.mkdir(dir, { recursive: true });
  const built = path.join(REPO_ROOT, 'dist', 'examples', name);
  for (const f of readdirSync(built)) if (f.endsWith('.js') && !f.includes('.test.')) await fs.copyFile(path.join(built, f), path.join(dir, f));
  await fs.copyFile(path.join(REPO_ROOT, 'examples', name, 'package', 'package.json'), path.join(dir, 'package.json'));
  await fs.copyFile(path.join(REPO_ROOT, 'examples', name, 'README.md'), path.join(dir, 'README.md'));
  return dir;
}

describe('example plugins use only the public API', () => {
  it('import nothing but berth/plugin, node: modules and their own sibling files', () => {
    for (const name of EXAMPLES) {
      const dir = path.join(REPO_ROOT, 'examples', name);
      for (const file of readdirSync(dir).filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts'))) {
        const source = readFileSync(path.join(dir, file), 'utf8');
        const specifiers = [...source.matchAll(/(?:from\s+|import\s*\(\s*|require\s*\(\s*)['"]([^'"]+)['"]/g)].map((m) => m[1]);
        expect(specifiers.length, `${name}/${file} imports something`).toBeGreaterThan(0);
        for (const s of specifiers) {
          const ok = s === 'berth/plugin' || s.startsWith('node:') || /^\.\/[\w.-]+$/.test(s);
          expect(ok, `${name}/${file} imports ${s}`).toBe(true);
        }
      }
    }
  });

  it('their manifests have the shape the loader checks, with no side effects at import', async () => {
    ensureExamplesBuilt();
    for (const name of EXAMPLES) {
      const mod = require(path.join(REPO_ROOT, 'dist', 'examples', name, 'index.js'));
      const manifest = mod.default ?? mod;
      expect(typeof manifest.init).toBe('function');
      expect(manifest.type).toMatch(/^(registry|isolator|storage|runtime)$/);
    }
  });
});

describe.skipIf(!isRoot)(`example plugins in a real berthd (${isRoot ? 'root' : rootReason})`, () => {
  let work: string;
  let layouts: string;
  const daemons: RunningDaemon[] = [];

  beforeAll(async () => {
    ensureExamplesBuilt();
    work = await makeTempDir('berth-plugins-');
    layouts = path.join(work, 'layouts');
    await buildBusyboxLayout(path.join(layouts, 'busybox'), { tag: 'v1', cmd: ['echo', 'from-layout'] });
    // Plugins resolve `berth/plugin` like any dependency: from a node_modules above them.
    await fs.mkdir(path.join(work, 'node_modules'), { recursive: true });
    await fs.symlink(REPO_ROOT, path.join(work, 'node_modules', 'berth'));
    for (const name of EXAMPLES) await stagePackage(name, path.join(work, 'pkgs'));
  });

  afterAll(async () => {
    for (const d of daemons) {
      await d.removeAllContainers();
      await d.stop();
    }
    if (work) await fs.rm(work, { recursive: true, force: true });
  });

  async function daemonWith(configDir: string, config: object): Promise<RunningDaemon> {
    await fs.mkdir(configDir, { recursive: true });
    const file = path.join(configDir, 'berth.config.json');
    await fs.writeFile(file, JSON.stringify(config, null, 2));
    const d = await startDaemon({ args: ['--config', file] });
    daemons.push(d);
    return d;
  }

  it('loads both examples by path (relative to the config file) and stacks the isolator with the built-ins', async () => {
    const d = await daemonWith(path.join(work, 'by-path'), {
      plugins: ['../pkgs/registry-layout', '../pkgs/isolator-readonly'],
      isolators: ['namespaces', 'cgroups', 'readonly'],
      pluginConfig: { 'registry.layout': { dir: layouts } },
    });
    const plugins = expectOk(await d.cli(['plugins'])).stdout;
    expect(plugins).toMatch(/registry\.layout\s+ok\s+\.\.\/pkgs\/registry-layout/);
    expect(plugins).toMatch(/isolator\.readonly\s+ok\s+\.\.\/pkgs\/isolator-readonly/);
    // No registry server anywhere: the image comes from the umoci layout on disk.
    expectOk(await d.cli(['pull', 'layout.local/busybox:v1']));
    const run = expectOk(await d.cli(['run', '--rm', 'layout.local/busybox:v1']));
    expect(run.stdout).toBe('from-layout\n');
    // The read-only rootfs holds, with tmpfs at /tmp and /run, under namespaces and cgroups.
    const probe = expectOk(
      await d.cli([
        'run',
        '--rm',
        '--memory',
        '64m',
        'layout.local/busybox:v1',
        'sh',
        '-c',
        'touch /x 2>/dev/null && echo rootfs-writable || echo rootfs-ro; touch /tmp/x /run/x && echo tmp-ok; grep " /tmp " /proc/mounts; echo pid=$$',
      ]),
    );
    expect(probe.stdout).toContain('rootfs-ro');
    expect(probe.stdout).toContain('tmp-ok');
    expect(probe.stdout).toMatch(/tmpfs \/tmp tmpfs/);
    expect(probe.stdout).toContain('pid=1');
    const missing = await d.cli(['pull', 'layout.local/nothing:v1']);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toMatch(/layout\.local\/nothing:v1/);
  });

  it('swaps in the example storage driver and runtime from config: containers run on them', async () => {
    const d = await daemonWith(path.join(work, 'storage-runtime'), {
      plugins: ['../pkgs/registry-layout', '../pkgs/storage-reflink', '../pkgs/runtime-timed'],
      storage: { driver: 'reflink' },
      runtime: 'timed',
      pluginConfig: { 'registry.layout': { dir: layouts } },
    });
    const plugins = expectOk(await d.cli(['plugins'])).stdout;
    expect(plugins).toMatch(/storage\.reflink\s+ok\s+\.\.\/pkgs\/storage-reflink/);
    expect(plugins).toMatch(/storage\.overlay\s+disabled/);
    expect(plugins).toMatch(/runtime\.timed\s+ok\s+\.\.\/pkgs\/runtime-timed/);
    // Not selected, but runtime.timed requires it by URI: it starts, outside the runtime slot.
    expect(plugins).toMatch(/runtime\.native\s+ok\s+builtin/);
    expectOk(await d.cli(['pull', 'layout.local/busybox:v1']));
    const layers = path.join(d.root, 'plugins', 'storage.reflink', 'layers');
    expect(readdirSync(layers).filter((n) => /^[0-9a-f]{64}$/.test(n)).length).toBeGreaterThan(0);
    expect(expectOk(await d.cli(['run', '--rm', 'layout.local/busybox:v1'])).stdout).toBe('from-layout\n');
    const id = expectOk(await d.cli(['run', '-d', 'layout.local/busybox:v1', 'sh', '-c', 'echo changed > /etc/motd'])).stdout.trim();
    expectOk(await d.cli(['wait', id]));
    // The container's writes are in its own tree, seen by diff, and not in the image's layers.
    expect(expectOk(await d.cli(['diff', id])).stdout).toMatch(/^A \/etc\/motd$/m);
    expect(readFileSync(path.join(d.root, 'plugins', 'storage.reflink', 'containers', id, 'root', 'etc', 'motd'), 'utf8')).toBe('changed\n');
    expectOk(await d.cli(['rm', id]));
    expect(existsSync(path.join(d.root, 'plugins', 'storage.reflink', 'containers', id))).toBe(false);
    // Each start went through the timing wrapper.
    const timings = readFileSync(path.join(d.root, 'plugins', 'runtime.timed', 'timings.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(timings.length).toBe(2);
    expect(timings.map((t) => t.container)).toContain(id);
    for (const t of timings) expect(t.totalMs).toBeGreaterThanOrEqual(t.spawnMs + t.attachMs);
  });

  it('loads the registry example as an npm package installed from its tarball', async () => {
    const { stdout } = await execFileP('npm', ['pack', '--silent', '--pack-destination', work], { cwd: path.join(work, 'pkgs', 'registry-layout') });
    const tarball = path.join(work, stdout.trim().split('\n').at(-1)!);
    const app = path.join(work, 'by-package');
    await fs.mkdir(app, { recursive: true });
    await fs.writeFile(path.join(app, 'package.json'), JSON.stringify({ name: 'berth-site', private: true }));
    await execFileP('npm', ['install', '--offline', '--no-audit', '--no-fund', '--ignore-scripts', tarball], { cwd: app });
    expect(existsSync(path.join(app, 'node_modules', 'berth-plugin-registry-layout', 'index.js'))).toBe(true);
    const d = await daemonWith(app, { plugins: ['berth-plugin-registry-layout'], pluginConfig: { 'registry.layout': { dir: layouts } } });
    expect(expectOk(await d.cli(['plugins'])).stdout).toMatch(/registry\.layout\s+ok\s+berth-plugin-registry-layout/);
    expectOk(await d.cli(['pull', 'layout.local/busybox:v1']));
    expect(expectOk(await d.cli(['run', '--rm', 'layout.local/busybox:v1'])).stdout).toBe('from-layout\n');
  });

  it('reports a plugin whose init throws, with its URI and cause, and berthd still starts', async () => {
    const dir = path.join(work, 'failing');
    await fs.mkdir(dir, { recursive: true });
    await fs.writeFile(path.join(dir, 'flaky.js'), `module.exports = { type: 'extension', id: 'flaky', init() { throw new Error('cannot reach the license server'); } };\n`);
    const d = await daemonWith(dir, { plugins: ['./flaky.js'] });
    const out = expectOk(await d.cli(['plugins'])).stdout;
    expect(out).toMatch(/extension\.flaky\s+failed\s+\.\/flaky\.js\s+init failed: cannot reach the license server/);
    expectOk(await d.cli(['version']));
  });

  it('refuses to start when a required plugin fails, naming it', async () => {
    const dir = path.join(work, 'failing');
    const file = path.join(dir, 'required.json');
    await fs.writeFile(file, JSON.stringify({ plugins: ['./flaky.js'], requiredPlugins: ['extension.flaky'] }));
    const res = await runBerthd(['--config', file, '--root', path.join(dir, 'root'), '--socket', path.join(dir, 'r.sock')]);
    expect(res.code).not.toBe(0);
    expect(res.stdout + res.stderr).toMatch(/required plugin extension\.flaky failed: init failed: cannot reach the license server/);
    expect(existsSync(path.join(dir, 'r.sock'))).toBe(false);
  });

  it('a bad plugin config is refused with the key named', async () => {
    const dir = path.join(work, 'bad-config');
    await fs.mkdir(dir, { recursive: true });
    const file = path.join(dir, 'berth.config.json');
    await fs.writeFile(file, JSON.stringify({ plugins: ['../pkgs/registry-layout'], pluginConfig: { 'registry.layout': { dir: 'relative/dir' } } }));
    const res = await runBerthd(['--config', file, '--root', path.join(dir, 'root'), '--socket', path.join(dir, 'b.sock')]);
    expect(res.code).not.toBe(0);
    expect(res.stdout + res.stderr).toMatch(/pluginConfig\.registry\.layout\.dir: expected the absolute path/);
  });
});
