/**
 * `berth bench isolation` end to end: the real CLI spawns a berthd per config (native runtime;
 * native plus the example read-only isolator; runc), pulls a umoci-built busybox from a real
 * registry, starts n=5 containers under each, runs the escape probes, and writes JSON with every
 * field. The probes must tell the configs apart where they differ (the rootfs write).
 */
import { existsSync, promises as fs, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, mountsUnder, runNode, CLI_JS } from '../helpers/daemon';
import { hasCommand, isRoot, rootReason } from '../helpers/env';
import { makeTempDir, pushBusybox } from '../helpers/fixtures';
import { startRegistry, type RunningRegistry } from '../helpers/registry';

const PROBES = ['seesHostPids', 'canMount', 'canWriteProcSys', 'canLoadModule', 'seesHostNetwork', 'writesRootfs', 'exceedsMemoryLimit'];
const STAT = ['samples', 'p50', 'p95'];

describe('berth bench isolation usage', () => {
  it('refuses a missing --config or --image with a usage error', async () => {
    const noConfig = await runNode([CLI_JS, 'bench', 'isolation', '--image', 'x']);
    expect(noConfig.code).toBe(125);
    expect(noConfig.stderr).toMatch(/--config/);
    const noImage = await runNode([CLI_JS, 'bench', 'isolation', '--config', '/nonexistent.json']);
    expect(noImage.code).toBe(125);
    expect(noImage.stderr).toMatch(/--image/);
  });
});

describe.skipIf(!isRoot)(`berth bench isolation (${isRoot ? 'root' : rootReason})`, () => {
  let registry: RunningRegistry;
  let work: string;
  let img: string;

  beforeAll(async () => {
    registry = await startRegistry();
    img = `${registry.host}/bench/busybox:latest`;
    await pushBusybox(registry.host, 'bench/busybox:latest', {});
    work = await makeTempDir('berth-bench-');
  });

  afterAll(async () => {
    await registry?.stop();
    if (work) await fs.rm(work, { recursive: true, force: true });
  });

  it('compares configs side by side and writes every field to JSON', async () => {
    // Bench runs of others (a developer's `npm run bench`) may hold bb- dirs meanwhile: only new ones count.
    const benchMounts = () => mountsUnder('/tmp').filter((m) => /\/bb-/.test(m));
    const before = new Set(benchMounts());
    const configs: Record<string, object> = {
      'native.json': { registries: { [registry.host]: { insecure: true } } },
      'native-readonly.json': {
        registries: { [registry.host]: { insecure: true } },
        isolators: ['namespaces', 'cgroups', 'readonly'],
        plugins: [path.join(REPO_ROOT, 'dist', 'examples', 'isolator-readonly', 'index.js')],
        requiredPlugins: ['isolator.readonly'],
      },
      ...(hasCommand('runc') ? { 'runc.json': { registries: { [registry.host]: { insecure: true } }, runtime: 'oci', requiredPlugins: ['runtime.oci'] } } : {}),
    };
    const args = ['bench', 'isolation', '--image', img, '-n', '5', '--json', path.join(work, 'out.json')];
    for (const [name, body] of Object.entries(configs)) {
      await fs.writeFile(path.join(work, name), JSON.stringify(body));
      args.push('--config', path.join(work, name));
    }
    const res = await runNode([CLI_JS, ...args], { timeoutMs: 240_000 });
    if (res.code !== 0) throw new Error(`bench failed (${res.code}):\n${res.stdout}\n${res.stderr}`);
    expect(res.stdout).toMatch(/START P50/);
    expect(res.stdout).toMatch(/escape probes/);

    const out = JSON.parse(readFileSync(path.join(work, 'out.json'), 'utf8'));
    expect(out).toMatchObject({ image: img, n: 5 });
    expect(out.configs).toHaveLength(Object.keys(configs).length);
    for (const c of out.configs) {
      for (const k of ['config', 'runtime', 'storageDriver', 'isolators', 'startMs', 'phasesMs', 'monitorRssKiB', 'containerMemoryKiB', 'daemonRssKiB', 'probes']) expect(c).toHaveProperty(k);
      for (const k of STAT) {
        expect(c.startMs).toHaveProperty(k);
        expect(c.monitorRssKiB).toHaveProperty(k);
        expect(c.containerMemoryKiB).toHaveProperty(k);
      }
      expect(c.startMs.samples).toHaveLength(5);
      expect(c.startMs.p50).toBeGreaterThan(0);
      expect(c.monitorRssKiB.p50).toBeGreaterThan(0);
      expect(c.containerMemoryKiB.p50).toBeGreaterThan(0);
      expect(c.daemonRssKiB).toBeGreaterThan(0);
      for (const p of PROBES) expect(typeof c.probes[p]).toBe('boolean');
      // Every config here keeps Docker's defaults: none of these escapes works.
      expect(c.probes).toMatchObject({ seesHostPids: false, canMount: false, canWriteProcSys: false, canLoadModule: false, seesHostNetwork: false, exceedsMemoryLimit: false });
      expect(c.phasesMs['isolator.namespaces plan'].samples).toHaveLength(5);
      expect(c.phasesMs['isolator.cgroups attach'].p50).toBeGreaterThan(0);
      expect(c.phasesMs['total start'].p50).toBeGreaterThan(0);
    }
    const byName = Object.fromEntries(out.configs.map((c: any) => [path.basename(c.config), c]));
    expect(byName['native.json'].runtime).toBe('native');
    expect(byName['native.json'].probes.writesRootfs).toBe(true);
    expect([...byName['native-readonly.json'].isolators].sort()).toEqual(['cgroups', 'namespaces', 'readonly']);
    expect(byName['native-readonly.json'].probes.writesRootfs).toBe(false);
    expect(byName['native-readonly.json'].phasesMs).toHaveProperty(['isolator.readonly plan']);
    if (byName['runc.json']) expect(byName['runc.json'].runtime).toBe('oci');
    // Each daemon's temp root is gone, with nothing left mounted.
    expect(benchMounts().filter((m) => !before.has(m))).toEqual([]);
    expect(existsSync(path.join(work, 'out.json'))).toBe(true);
  }, 300_000);
});
