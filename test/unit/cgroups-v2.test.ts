/**
 * isolator.cgroups on a cgroup v2 host, against a fake tree in a temp dir, plus the value
 * conversions Docker's fields need on v2 (runc's formulas).
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { IsolationTarget } from '../../core/contracts/isolator';
import type { LaunchPlan } from '../../core/contracts/launch';
import cgroupsPlugin from '../../plugins/isolator-cgroups/index';
import { CgroupsIsolator } from '../../plugins/isolator-cgroups/isolator';
import { detectLayout, parseCgroupMounts } from '../../plugins/isolator-cgroups/layout';
import { blkioWeightToIoWeight, cpuMax, memorySwapMax, nanoCpusToQuota, parseResources, sharesToWeight } from '../../plugins/isolator-cgroups/resources';
import { parseIoStatV2, systemCpu } from '../../plugins/isolator-cgroups/stats';
import { FakeCgroupTree } from '../helpers/cgroups-fake';

const MiB = 1024 * 1024;

describe('value conversions', () => {
  it('cpu.weight from CpuShares as runc converts it', () => {
    expect(sharesToWeight(2)).toBe(1);
    expect(sharesToWeight(1024)).toBe(39);
    expect(sharesToWeight(512)).toBe(20);
    expect(sharesToWeight(262144)).toBe(10000);
    expect(sharesToWeight(0)).toBe(0);
  });

  it('cpu.max from NanoCpus and CpuQuota/CpuPeriod', () => {
    expect(nanoCpusToQuota(0.5e9)).toBe(50000);
    expect(nanoCpusToQuota(1.5e9)).toBe(150000);
    expect(cpuMax(nanoCpusToQuota(0.5e9), 100000)).toBe('50000 100000');
    expect(cpuMax(undefined, 100000)).toBe('max 100000');
    expect(cpuMax(-1, 50000)).toBe('max 50000');
    const r = parseResources({ NanoCpus: 1.25e9 }, 'create', 2);
    expect(cpuMax(r.cpuQuota, r.cpuPeriod)).toBe('125000 100000');
  });

  it('memory.swap.max is swap only: MemorySwap - Memory', () => {
    expect(memorySwapMax(128 * MiB, 64 * MiB)).toBe(String(64 * MiB));
    expect(memorySwapMax(64 * MiB, 64 * MiB)).toBe('0');
    expect(memorySwapMax(-1, 64 * MiB)).toBe('max');
    expect(memorySwapMax(0, 64 * MiB)).toBeUndefined();
    expect(memorySwapMax(undefined, 64 * MiB)).toBeUndefined();
    expect(() => memorySwapMax(32 * MiB, 64 * MiB)).toThrow(/larger than memory limit/);
    expect(() => memorySwapMax(64 * MiB, undefined)).toThrow(/without memory limit/);
  });

  it('io.weight from BlkioWeight', () => {
    expect(blkioWeightToIoWeight(10)).toBe(1);
    expect(blkioWeightToIoWeight(1000)).toBe(10000);
    expect(blkioWeightToIoWeight(500)).toBe(4950);
  });
});

describe("parseResources: Docker's rules and messages", () => {
  it('defaults MemorySwap to twice Memory at create, not at update', () => {
    expect(parseResources({ Memory: 64 * MiB })).toMatchObject({ memory: 64 * MiB, memorySwap: 128 * MiB, memorySwapImplied: true });
    expect(parseResources({ Memory: 64 * MiB }, 'update')).toEqual({ memory: 64 * MiB });
    expect(parseResources({ Memory: 64 * MiB, MemorySwap: -1 })).toMatchObject({ memorySwap: -1 });
  });

  it('refuses bad values, naming the field', () => {
    expect(() => parseResources({ Memory: 4 * MiB })).toThrow('Minimum memory limit allowed is 6MB');
    expect(() => parseResources({ Memory: -1 })).toThrow(/HostConfig.Memory: must not be negative/);
    expect(() => parseResources({ Memory: '1g' })).toThrow(/HostConfig.Memory: expected an integer/);
    expect(() => parseResources({ MemorySwap: 64 * MiB })).toThrow(/always set the Memory limit/);
    expect(() => parseResources({ Memory: 64 * MiB, MemorySwap: 32 * MiB })).toThrow(/memoryswap limit should be larger/);
    expect(() => parseResources({ Memory: 32 * MiB, MemoryReservation: 64 * MiB })).toThrow(/less than memory reservation/);
    expect(() => parseResources({ MemoryReservation: 1024 })).toThrow(/Minimum memory reservation allowed is 6MB/);
    expect(() => parseResources({ MemorySwappiness: 101 })).toThrow(/valid memory swappiness range is 0-100/);
    expect(parseResources({ MemorySwappiness: -1 }).memorySwappiness).toBeUndefined(); // what clients send when unset
    expect(() => parseResources({ CpuShares: -5 })).toThrow(/HostConfig.CpuShares/);
    expect(() => parseResources({ NanoCpus: 3e9 }, 'create', 2)).toThrow('Range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available');
    expect(() => parseResources({ NanoCpus: -1 }, 'create', 2)).toThrow(/Range of CPUs/);
    expect(() => parseResources({ NanoCpus: 1e9, CpuQuota: 50000 })).toThrow(/Conflicting options: Nano CPUs and CPU Quota/);
    expect(() => parseResources({ NanoCpus: 1e9, CpuPeriod: 50000 })).toThrow(/Conflicting options: Nano CPUs and CPU Period/);
    expect(() => parseResources({ CpuPeriod: 500 })).toThrow(/CPU cfs period/);
    expect(() => parseResources({ CpuQuota: 10 })).toThrow(/CPU cfs quota/);
    expect(() => parseResources({ CpusetCpus: '0-x' })).toThrow(/HostConfig.CpusetCpus: invalid list/);
    expect(() => parseResources({ PidsLimit: -2 })).toThrow(/HostConfig.PidsLimit/);
    expect(() => parseResources({ BlkioWeight: 5 })).toThrow(/Range of blkio weight is from 10 to 1000/);
  });

  it("treats 0 and -1 PidsLimit as unlimited; CpuShares are clamped to the kernel's range", () => {
    expect(parseResources({ PidsLimit: 0 }).pidsLimit).toBeUndefined();
    expect(parseResources({ PidsLimit: -1 }).pidsLimit).toBeUndefined();
    expect(parseResources({ PidsLimit: 0 }, 'update').pidsLimit).toBe(-1);
    expect(parseResources({ CpuShares: 1 }).cpuShares).toBe(2);
    expect(parseResources({ CpuShares: 1_000_000 }).cpuShares).toBe(262144);
  });
});

describe('layout detection', () => {
  it('parses mountinfo with escapes and a non-root mount root', () => {
    const m = parseCgroupMounts('41 31 0:38 /ns /sys/fs/cgroup\\040x rw - cgroup2 cgroup2 rw\n42 31 0:39 / /tmp rw - tmpfs tmpfs rw\n');
    expect(m).toEqual([{ type: 'cgroup2', root: '/ns', mountPoint: '/sys/fs/cgroup x', superOptions: ['rw'] }]);
    const layout = detectLayout({ mountinfo: '41 31 0:38 /ns /nonexistent/cg rw - cgroup2 cgroup2 rw\n', selfCgroup: '0::/ns/berthd\n' });
    expect(layout.version).toBe('2');
    expect(layout.unified?.ownDir).toBe('/nonexistent/cg/berthd');
  });

  it('refuses a host without cgroups', () => {
    expect(() => detectLayout({ mountinfo: '', selfCgroup: '0::/\n' })).toThrow(/no cgroup hierarchy is mounted/);
  });
});

describe('isolator.cgroups on a fake cgroup v2 tree', () => {
  let tree: FakeCgroupTree;
  let iso: CgroupsIsolator;
  let stateDir: string;
  const own = '/system.slice/berthd.service';
  const target = (hostConfig: Record<string, unknown> = {}, containerId = 'c1'): IsolationTarget => ({ containerId, stateDir, hostConfig });
  const plan = (): LaunchPlan => ({
    namespaces: [],
    rootfs: '/x',
    mounts: [],
    maskedPaths: [],
    readonlyPaths: [],
    capabilities: [],
    noNewPrivileges: false,
    process: { args: ['true'], env: [], cwd: '/', uid: 0, gid: 0, additionalGids: [], terminal: false },
  });

  beforeEach(() => {
    tree = new FakeCgroupTree([{ kind: 'v2', controllers: [], own }], ['cpuset', 'cpu', 'io', 'memory', 'pids']);
    stateDir = mkdtempSync('/tmp/berth-cgstate-');
    iso = new CgroupsIsolator({ parent: 'berth' }, detectLayout({ mountinfo: tree.mountinfo, selfCgroup: tree.selfCgroup }), tree.fs, tree.bpf);
  });
  afterEach(() => {
    tree.dispose();
    rmSync(stateDir, { recursive: true, force: true });
  });

  it('reports version 2 and the controllers for berth info', () => {
    expect(iso.info().cgroups).toEqual({ version: '2', driver: 'cgroupfs', controllers: ['cpu', 'cpuset', 'io', 'memory', 'pids'] });
  });

  it('creates <own>/berth/<id>, enables controllers on the way, and writes v2 limits', async () => {
    const t = target({ Memory: 64 * MiB, MemorySwap: 128 * MiB, MemoryReservation: 32 * MiB, NanoCpus: 1.5e9, CpuShares: 1024, PidsLimit: 100, BlkioWeight: 500, CpusetCpus: '1' });
    await iso.setup(t);
    const dir = ['unified', 'system.slice', 'berthd.service', 'berth', 'c1'];
    expect(existsSync(tree.path(...dir))).toBe(true);
    expect(tree.read('unified', 'system.slice', 'berthd.service', 'cgroup.subtree_control').split(' ').sort()).toEqual(['cpu', 'cpuset', 'io', 'memory', 'pids']);
    expect(tree.read('unified', 'system.slice', 'berthd.service', 'berth', 'cgroup.subtree_control').split(' ').sort()).toEqual(['cpu', 'cpuset', 'io', 'memory', 'pids']);
    expect(tree.read(...dir, 'memory.max')).toBe(String(64 * MiB));
    expect(tree.read(...dir, 'memory.swap.max')).toBe(String(64 * MiB));
    expect(tree.read(...dir, 'memory.low')).toBe(String(32 * MiB));
    expect(tree.read(...dir, 'cpu.max')).toBe('150000 100000');
    expect(tree.read(...dir, 'cpu.weight')).toBe('39');
    expect(tree.read(...dir, 'pids.max')).toBe('100');
    expect(tree.read(...dir, 'io.weight')).toBe('default 4950');
    expect(tree.read(...dir, 'cpuset.cpus')).toBe('1');
    // Never a write outside berth's own subtree, and never to cgroup.procs of anything but the container.
    for (const [f] of tree.writes) expect(f.startsWith(tree.path('unified', 'system.slice', 'berthd.service'))).toBe(true);
    expect(tree.writesTo('cgroup.procs')).toEqual([]);

    const p = plan();
    iso.plan(t, p);
    expect(p.cgroupPaths).toEqual([tree.path(...dir)]);
    expect(p.oomCgroup).toBe(tree.path(...dir));

    await iso.attach(t, 4242);
    expect(tree.read(...dir, 'cgroup.procs')).toBe('4242\n');
    expect(iso.pids(t)).toEqual([4242]);
  });

  it('refuses MemorySwappiness, which cgroup v2 has no file for, naming the field', async () => {
    await expect(iso.setup(target({ MemorySwappiness: 10 }))).rejects.toThrow(/HostConfig\.MemorySwappiness/);
  });

  it('applies the implied swap default (2 x Memory) as memory.swap.max = Memory', async () => {
    await iso.setup(target({ Memory: 64 * MiB }));
    expect(tree.read('unified', 'system.slice', 'berthd.service', 'berth', 'c1', 'memory.swap.max')).toBe(String(64 * MiB));
  });

  it('a limit whose controller the host lacks is a clear error, and nothing is left behind', async () => {
    tree.dispose();
    tree = new FakeCgroupTree([{ kind: 'v2', controllers: [], own }], ['cpu', 'pids']);
    iso = new CgroupsIsolator({ parent: 'berth' }, detectLayout({ mountinfo: tree.mountinfo, selfCgroup: tree.selfCgroup }), tree.fs, tree.bpf);
    await expect(iso.setup(target({ Memory: 64 * MiB }))).rejects.toThrow('--memory needs the memory cgroup controller, which this host does not have (HostConfig.Memory)');
    await expect(iso.setup(target({ BlkioWeight: 300 }))).rejects.toThrow(/--blkio-weight needs the blkio cgroup controller/);
    await expect(iso.setup(target({ CpusetCpus: '0' }))).rejects.toThrow(/--cpuset-cpus needs the cpuset cgroup controller/);
    expect(existsSync(tree.path('unified', 'system.slice', 'berthd.service', 'berth', 'c1'))).toBe(false);
    // Without such limits a container still gets its cgroup.
    await iso.setup(target({ PidsLimit: 10 }));
    expect(tree.read('unified', 'system.slice', 'berthd.service', 'berth', 'c1', 'pids.max')).toBe('10');
  });

  it("explains v2's no-internal-processes rule when berthd's cgroup holds processes", async () => {
    tree.failWrites.set('cgroup.subtree_control', 'EBUSY');
    await expect(iso.setup(target({ Memory: 64 * MiB }))).rejects.toThrow(/holds processes.*pluginConfig\['isolator.cgroups'\].parent/);
    expect(existsSync(tree.path('unified', 'system.slice', 'berthd.service', 'berth', 'c1'))).toBe(false);
    await iso.setup(target({}));
    expect(existsSync(tree.path('unified', 'system.slice', 'berthd.service', 'berth', 'c1'))).toBe(true);
  });

  it('an absolute parent puts containers below the hierarchy root', async () => {
    iso = new CgroupsIsolator({ parent: '/berth' }, detectLayout({ mountinfo: tree.mountinfo, selfCgroup: tree.selfCgroup }, true), tree.fs, tree.bpf);
    await iso.setup(target({ Memory: 64 * MiB }));
    expect(tree.read('unified', 'berth', 'c1', 'memory.max')).toBe(String(64 * MiB));
    expect(tree.read('unified', 'cgroup.subtree_control')).toContain('memory');
  });

  it("refuses cpus the parent does not have, with Docker's message, and removes the half-made cgroup", async () => {
    await expect(iso.setup(target({ CpusetCpus: '0-3' }))).rejects.toThrow('Requested CPUs are not available - requested 0-3, available: 0-1');
    expect(existsSync(tree.path('unified', 'system.slice', 'berthd.service', 'berth', 'c1'))).toBe(false);
  });

  it('pause waits for frozen 1 in cgroup.events; resume thaws', async () => {
    const t = target();
    await iso.setup(t);
    await iso.pause(t);
    expect(tree.writesTo('cgroup.freeze')).toEqual(['1']);
    expect(iso.paused(t)).toBe(true);
    await iso.resume(t);
    expect(tree.writesTo('cgroup.freeze')).toEqual(['1', '0']);
    expect(iso.paused(t)).toBe(false);
  });

  it('stats come from cpu.stat, memory.current/max/stat, pids and io.stat', async () => {
    const t = target({ Memory: 64 * MiB, PidsLimit: 30 });
    await iso.setup(t);
    const dir = tree.path('unified', 'system.slice', 'berthd.service', 'berth', 'c1');
    const { writeFileSync } = await import('node:fs');
    writeFileSync(join(dir, 'cpu.stat'), 'usage_usec 5000\nuser_usec 3000\nsystem_usec 2000\nnr_periods 7\nnr_throttled 2\nthrottled_usec 10\n');
    writeFileSync(join(dir, 'memory.current'), '1048576\n');
    writeFileSync(join(dir, 'memory.stat'), 'anon 4096\nfile 8192\n');
    writeFileSync(join(dir, 'pids.current'), '3\n');
    writeFileSync(join(dir, 'io.stat'), '8:0 rbytes=100 wbytes=200 rios=1 wios=2 dbytes=0 dios=0\n');
    const s = (await iso.stats(t)) as Record<string, Record<string, unknown>>;
    expect(s.cpu_stats.cpu_usage).toEqual({ total_usage: 5_000_000, usage_in_usermode: 3_000_000, usage_in_kernelmode: 2_000_000 });
    expect(s.cpu_stats.throttling_data).toEqual({ periods: 7, throttled_periods: 2, throttled_time: 10_000 });
    expect(s.memory_stats).toEqual({ usage: 1048576, limit: 64 * MiB, stats: { anon: 4096, file: 8192 } });
    expect(s.pids_stats).toEqual({ current: 3, limit: 30 });
    expect(s.blkio_stats.io_service_bytes_recursive).toEqual([
      { major: 8, minor: 0, op: 'read', value: 100 },
      { major: 8, minor: 0, op: 'write', value: 200 },
    ]);
  });

  it('oomKilled reads oom_kill from memory.events', async () => {
    const t = target({ Memory: 64 * MiB });
    await iso.setup(t);
    expect(iso.oomKilled(t)).toBe(false);
    const { writeFileSync } = await import('node:fs');
    writeFileSync(tree.path('unified', 'system.slice', 'berthd.service', 'berth', 'c1', 'memory.events'), 'low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n');
    expect(iso.oomKilled(t)).toBe(true);
  });

  it('update changes only the fields given', async () => {
    const t = target({ Memory: 64 * MiB, NanoCpus: 1e9, PidsLimit: 20 });
    await iso.setup(t);
    const dir = ['unified', 'system.slice', 'berthd.service', 'berth', 'c1'];
    await iso.update(t, { PidsLimit: 0 });
    expect(tree.read(...dir, 'pids.max')).toBe('max');
    await iso.update(t, { CpuQuota: 25000 });
    expect(tree.read(...dir, 'cpu.max')).toBe('25000 100000');
    await iso.update(t, { NanoCpus: 0.5e9 });
    expect(tree.read(...dir, 'cpu.max')).toBe('50000 100000');
    await iso.update(t, { Memory: 0 });
    expect(tree.read(...dir, 'memory.max')).toBe('max');
    expect(tree.read(...dir, 'memory.swap.max')).toBe('max');
    await expect(iso.update(t, { Memory: 1 })).rejects.toThrow(/6MB/);
  });

  it('cleanup kills what is left (cgroup.kill) and removes the dir; a second cleanup is a no-op', async () => {
    const t = target();
    await iso.setup(t);
    await iso.attach(t, 999999);
    await iso.pause(t);
    await iso.cleanup(t);
    expect(tree.writesTo('cgroup.freeze')).toEqual(['1', '0']); // thawed first
    expect(tree.writesTo('cgroup.kill')).toEqual(['1']);
    expect(existsSync(tree.path('unified', 'system.slice', 'berthd.service', 'berth', 'c1'))).toBe(false);
    expect(existsSync(tree.path('unified', 'system.slice', 'berthd.service', 'berth'))).toBe(true); // the parent stays
    await iso.cleanup(t);
  });

  it('remembers the dirs in the state dir, so a restarted berthd finds them', async () => {
    const t = target();
    await iso.setup(t);
    const fresh = new CgroupsIsolator({ parent: 'elsewhere' }, detectLayout({ mountinfo: tree.mountinfo, selfCgroup: tree.selfCgroup }), tree.fs, tree.bpf);
    const p = plan();
    fresh.plan(t, p);
    expect(p.cgroupPaths).toEqual([tree.path('unified', 'system.slice', 'berthd.service', 'berth', 'c1')]);
    await fresh.cleanup(t);
    expect(existsSync(tree.path('unified', 'system.slice', 'berthd.service', 'berth', 'c1'))).toBe(false);
  });

  it('refuses a container id that cannot name a cgroup', async () => {
    await expect(iso.setup(target({}, '../escape'))).rejects.toThrow(/cannot name a cgroup/);
  });
});

describe('plugin manifest', () => {
  it('validates the parent key', () => {
    expect(cgroupsPlugin.parseConfig!({ parent: 'berth' })).toEqual({ parent: 'berth', hierarchy: 'auto', cpuRtRuntime: 0 });
    expect(cgroupsPlugin.parseConfig!({ parent: '/berth/' })).toEqual({ parent: '/berth', hierarchy: 'auto', cpuRtRuntime: 0 });
    expect(() => cgroupsPlugin.parseConfig!({ parent: '../up' })).toThrow(/parent: expected a cgroup path/);
    expect(() => cgroupsPlugin.parseConfig!({ parent: 5 })).toThrow(/parent/);
    expect(cgroupsPlugin.parseConfig!({ cpuRtRuntime: 950000 }).cpuRtRuntime).toBe(950000);
    expect(() => cgroupsPlugin.parseConfig!({ cpuRtRuntime: -1 })).toThrow(/cpuRtRuntime: expected the microseconds/);
  });
});

describe('stats helpers', () => {
  it('system_cpu_usage and online_cpus from /proc/stat', () => {
    expect(systemCpu('cpu  100 0 50 800 10 0 5 0 0 0\ncpu0 50 0 25 400 5 0 3 0 0 0\ncpu1 50 0 25 400 5 0 2 0 0 0\nintr 1\n')).toEqual({ systemCpuUsage: 965 * 1e7, onlineCpus: 2 });
  });
  it('io.stat lines', () => {
    expect(parseIoStatV2('259:0 rbytes=1 wbytes=2 rios=3 wios=4\n').ios).toEqual([
      { major: 259, minor: 0, op: 'read', value: 3 },
      { major: 259, minor: 0, op: 'write', value: 4 },
    ]);
  });
});
