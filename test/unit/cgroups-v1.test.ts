/**
 * isolator.cgroups on cgroup v1 and hybrid hosts, against a fake tree in a temp dir.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { IsolationTarget } from '../../core/contracts/isolator';
import type { LaunchPlan } from '../../core/contracts/launch';
import { CgroupsIsolator } from '../../plugins/isolator-cgroups/isolator';
import { detectLayout } from '../../plugins/isolator-cgroups/layout';
import { DEFAULT_DEVICE_RULES } from '../../plugins/isolator-cgroups/devices';
import { FakeCgroupTree, type FakeHierarchy } from '../helpers/cgroups-fake';

const MiB = 1024 * 1024;
const MEMORY_OWN = '/process_api/abc';

/** This machine's shape: v1 controllers each on its own mount (cpu with cpuacct here), memory below a sandbox cgroup. */
function v1Hierarchies(skip: string[] = []): FakeHierarchy[] {
  const all: FakeHierarchy[] = [
    { kind: 'v1', controllers: ['cpu', 'cpuacct'], own: '/' },
    { kind: 'v1', controllers: ['cpuset'], own: '/' },
    { kind: 'v1', controllers: ['memory'], own: MEMORY_OWN },
    { kind: 'v1', controllers: ['devices'], own: '/' },
    { kind: 'v1', controllers: ['freezer'], own: '/' },
    { kind: 'v1', controllers: ['blkio'], own: '/' },
    { kind: 'v1', controllers: ['pids'], own: '/' },
  ];
  return all.filter((h) => !h.controllers.some((c) => skip.includes(c)));
}

describe('isolator.cgroups on a fake cgroup v1 / hybrid tree', () => {
  let tree: FakeCgroupTree;
  let iso: CgroupsIsolator;
  let stateDir: string;
  const target = (hostConfig: Record<string, unknown> = {}): IsolationTarget => ({ containerId: 'c1', stateDir, hostConfig });
  const make = (hierarchies: FakeHierarchy[]) => {
    tree?.dispose();
    tree = new FakeCgroupTree(hierarchies);
    iso = new CgroupsIsolator({ parent: 'berth' }, detectLayout({ mountinfo: tree.mountinfo, selfCgroup: tree.selfCgroup }), tree.fs, tree.bpf);
  };
  const mem = (...f: string[]) => ['memory', ...MEMORY_OWN.split('/').filter(Boolean), 'berth', 'c1', ...f];

  beforeEach(() => {
    stateDir = mkdtempSync('/tmp/berth-cgstate-');
    make([...v1Hierarchies(), { kind: 'v2', controllers: [], own: '/' }]);
  });
  afterEach(() => {
    tree.dispose();
    rmSync(stateDir, { recursive: true, force: true });
  });

  it('detects hybrid: v1 controllers plus an empty cgroup2 mount; pure v1 without it', () => {
    expect(iso.info().cgroups).toEqual({ version: 'hybrid', driver: 'cgroupfs', controllers: ['blkio', 'cpu', 'cpuacct', 'cpuset', 'devices', 'freezer', 'memory', 'pids'] });
    make(v1Hierarchies());
    expect(iso.info().cgroups.version).toBe('1');
  });

  it("creates the container cgroup below berthd's own cgroup in every hierarchy, the cgroup2 one too", async () => {
    const t = target();
    await iso.setup(t);
    const p = { cgroupPaths: [] } as unknown as LaunchPlan;
    iso.plan(t, p);
    expect(p.cgroupPaths).toEqual([
      tree.path('cpu,cpuacct', 'berth', 'c1'),
      tree.path('cpuset', 'berth', 'c1'),
      tree.path(...mem()),
      tree.path('devices', 'berth', 'c1'),
      tree.path('freezer', 'berth', 'c1'),
      tree.path('blkio', 'berth', 'c1'),
      tree.path('pids', 'berth', 'c1'),
      tree.path('unified', 'berth', 'c1'),
    ]);
    expect(p.oomCgroup).toBe(tree.path(...mem()));
    for (const d of p.cgroupPaths!) expect(existsSync(d)).toBe(true);
    await iso.attach(t, 777);
    for (const d of p.cgroupPaths!) expect(tree.read(d.slice(tree.base.length + 1), 'cgroup.procs')).toBe('777\n');
  });

  it('copies cpuset.cpus/mems from the parent into berth/ and the container before anything else', async () => {
    await iso.setup(target());
    expect(tree.read('cpuset', 'berth', 'cpuset.cpus')).toBe('0-1');
    expect(tree.read('cpuset', 'berth', 'cpuset.mems')).toBe('0');
    expect(tree.read('cpuset', 'berth', 'c1', 'cpuset.cpus')).toBe('0-1');
    expect(tree.read('cpuset', 'berth', 'c1', 'cpuset.mems')).toBe('0');
  });

  it("writes v1 limits with Docker's semantics", async () => {
    await iso.setup(target({ Memory: 64 * MiB, MemoryReservation: 32 * MiB, MemorySwappiness: 40, NanoCpus: 0.5e9, CpuShares: 512, PidsLimit: 20, BlkioWeight: 300, CpusetCpus: '1' }));
    expect(tree.read(...mem('memory.limit_in_bytes'))).toBe(String(64 * MiB));
    expect(tree.read(...mem('memory.swappiness'))).toBe('40');
    expect(tree.read(...mem('memory.memsw.limit_in_bytes'))).toBe(String(128 * MiB)); // Docker's default: twice Memory
    expect(tree.read(...mem('memory.soft_limit_in_bytes'))).toBe(String(32 * MiB));
    // The kernel wants limit <= memsw at every step: from unlimited, the memory limit goes first.
    expect(tree.writes.filter(([f]) => /memory\.(memsw\.)?limit_in_bytes$/.test(f)).map(([f]) => f.split('/').pop())).toEqual(['memory.limit_in_bytes', 'memory.memsw.limit_in_bytes']);
    expect(tree.read('cpu,cpuacct', 'berth', 'c1', 'cpu.cfs_period_us')).toBe('100000');
    expect(tree.read('cpu,cpuacct', 'berth', 'c1', 'cpu.cfs_quota_us')).toBe('50000');
    expect(tree.read('cpu,cpuacct', 'berth', 'c1', 'cpu.shares')).toBe('512');
    expect(tree.read('pids', 'berth', 'c1', 'pids.max')).toBe('20');
    expect(tree.read('blkio', 'berth', 'c1', 'blkio.weight')).toBe('300');
    expect(tree.read('cpuset', 'berth', 'c1', 'cpuset.cpus')).toBe('1');
  });

  it("denies all devices, then allows Docker's list; privileged allows all", async () => {
    await iso.setup(target());
    expect(tree.writesTo('devices.deny')).toEqual(['a']);
    expect(tree.writesTo('devices.allow')).toEqual(DEFAULT_DEVICE_RULES);
    expect(DEFAULT_DEVICE_RULES).toEqual(
      expect.arrayContaining(['c *:* m', 'b *:* m', 'c 1:3 rwm', 'c 1:5 rwm', 'c 1:7 rwm', 'c 1:8 rwm', 'c 1:9 rwm', 'c 5:0 rwm', 'c 5:1 rwm', 'c 5:2 rwm', 'c 136:* rwm']),
    );
    await iso.cleanup(target());
    tree.writes.length = 0;
    await iso.setup(target({ Privileged: true }));
    expect(tree.writesTo('devices.deny')).toEqual([]);
    expect(tree.writesTo('devices.allow')).toEqual(['a']);
  });

  it('a limit on a missing controller names the flag and the controller; nothing is made', async () => {
    make(v1Hierarchies(['pids', 'memory']));
    await expect(iso.setup(target({ PidsLimit: 10 }))).rejects.toThrow('--pids-limit needs the pids cgroup controller, which this host does not have (HostConfig.PidsLimit)');
    await expect(iso.setup(target({ Memory: 64 * MiB }))).rejects.toThrow('--memory needs the memory cgroup controller, which this host does not have (HostConfig.Memory)');
    expect(existsSync(tree.path('cpu,cpuacct', 'berth', 'c1'))).toBe(false);
  });

  it('an explicit MemorySwap without swap accounting is refused; the implied one is dropped', async () => {
    rmSync(tree.path('memory', 'process_api', 'abc', 'memory.memsw.limit_in_bytes'));
    const { V1_FILES } = await import('../helpers/cgroups-fake');
    const saved = V1_FILES.memory['memory.memsw.limit_in_bytes'];
    delete V1_FILES.memory['memory.memsw.limit_in_bytes'];
    try {
      await expect(iso.setup(target({ Memory: 64 * MiB, MemorySwap: 128 * MiB }))).rejects.toThrow(/--memory-swap needs swap accounting/);
      expect(existsSync(tree.path(...mem()))).toBe(false);
      await iso.setup(target({ Memory: 64 * MiB }));
      expect(tree.read(...mem('memory.limit_in_bytes'))).toBe(String(64 * MiB));
    } finally {
      V1_FILES.memory['memory.memsw.limit_in_bytes'] = saved;
    }
  });

  it('BlkioWeight without blkio.weight (no BFQ/CFQ) is a clear error', async () => {
    const { V1_FILES } = await import('../helpers/cgroups-fake');
    const saved = V1_FILES.blkio['blkio.weight'];
    delete V1_FILES.blkio['blkio.weight'];
    try {
      await expect(iso.setup(target({ BlkioWeight: 300 }))).rejects.toThrow(/--blkio-weight needs blkio.weight/);
    } finally {
      V1_FILES.blkio['blkio.weight'] = saved;
    }
  });

  it('pause writes FROZEN to freezer.state and resume THAWED', async () => {
    const t = target();
    await iso.setup(t);
    await iso.pause(t);
    expect(tree.read('freezer', 'berth', 'c1', 'freezer.state')).toBe('FROZEN');
    expect(iso.paused(t)).toBe(true);
    await iso.resume(t);
    expect(tree.read('freezer', 'berth', 'c1', 'freezer.state')).toBe('THAWED');
    expect(tree.writesTo('cgroup.freeze')).toEqual([]); // v1's freezer wins over the cgroup2 dir
  });

  it('stats and oomKilled from v1 files', async () => {
    const t = target({ Memory: 64 * MiB, PidsLimit: 9 });
    await iso.setup(t);
    writeFileSync(tree.path('cpu,cpuacct', 'berth', 'c1', 'cpuacct.usage'), '123456789\n');
    writeFileSync(tree.path('cpu,cpuacct', 'berth', 'c1', 'cpuacct.usage_percpu'), '100000000 23456789\n');
    writeFileSync(tree.path('cpu,cpuacct', 'berth', 'c1', 'cpuacct.stat'), 'user 10\nsystem 2\n');
    writeFileSync(tree.path(...mem('memory.usage_in_bytes')), '2097152\n');
    writeFileSync(tree.path(...mem('memory.stat')), 'cache 4096\nrss 8192\n');
    writeFileSync(tree.path('pids', 'berth', 'c1', 'pids.current'), '4\n');
    writeFileSync(tree.path('blkio', 'berth', 'c1', 'blkio.throttle.io_service_bytes_recursive'), '8:0 Read 4096\n8:0 Write 8192\nTotal 12288\n');
    const s = (await iso.stats(t)) as Record<string, Record<string, unknown>>;
    expect(s.cpu_stats.cpu_usage).toEqual({ total_usage: 123456789, percpu_usage: [100000000, 23456789], usage_in_usermode: 100_000_000, usage_in_kernelmode: 20_000_000 });
    expect(s.memory_stats).toMatchObject({ usage: 2097152, limit: 64 * MiB, stats: { cache: 4096, rss: 8192 } });
    expect(s.pids_stats).toEqual({ current: 4, limit: 9 });
    expect(s.blkio_stats.io_service_bytes_recursive).toEqual([
      { major: 8, minor: 0, op: 'Read', value: 4096 },
      { major: 8, minor: 0, op: 'Write', value: 8192 },
    ]);
    expect(iso.oomKilled(t)).toBe(false);
    writeFileSync(tree.path(...mem('memory.oom_control')), 'oom_kill_disable 0\nunder_oom 0\noom_kill 1\n');
    expect(iso.oomKilled(t)).toBe(true);
  });

  it('update orders the memory writes so the kernel accepts them, and refuses memory above memsw', async () => {
    const t = target({ Memory: 64 * MiB });
    await iso.setup(t);
    tree.writes.length = 0;
    // Lowering: memory first, then memsw.
    await iso.update(t, { Memory: 32 * MiB, MemorySwap: 48 * MiB });
    expect(tree.writes.map(([f, v]) => `${f.split('/').pop()}=${v}`)).toEqual([`memory.limit_in_bytes=${32 * MiB}`, `memory.memsw.limit_in_bytes=${48 * MiB}`]);
    tree.writes.length = 0;
    // Raising: memsw first.
    await iso.update(t, { Memory: 96 * MiB, MemorySwap: 192 * MiB });
    expect(tree.writes.map(([f]) => f.split('/').pop())).toEqual(['memory.memsw.limit_in_bytes', 'memory.limit_in_bytes']);
    // Lifting the limit lifts swap too (runc).
    await iso.update(t, { Memory: 0 });
    expect(tree.read(...mem('memory.limit_in_bytes'))).toBe('-1');
    expect(tree.read(...mem('memory.memsw.limit_in_bytes'))).toBe('-1');
    await iso.update(t, { PidsLimit: 50, CpuShares: 256 });
    expect(tree.read('pids', 'berth', 'c1', 'pids.max')).toBe('50');
    expect(tree.read('cpu,cpuacct', 'berth', 'c1', 'cpu.shares')).toBe('256');
  });

  it('cleanup removes the container dir in every hierarchy and keeps the berth parents', async () => {
    const t = target();
    await iso.setup(t);
    await iso.pause(t);
    await iso.cleanup(t);
    expect(tree.writesTo('freezer.state')).toEqual(['FROZEN', 'THAWED']);
    for (const h of ['cpu,cpuacct', 'cpuset', 'devices', 'freezer', 'blkio', 'pids', 'unified']) {
      expect(existsSync(tree.path(h, 'berth', 'c1'))).toBe(false);
      expect(existsSync(tree.path(h, 'berth'))).toBe(true);
    }
    expect(existsSync(tree.path(...mem()))).toBe(false);
  });
});
