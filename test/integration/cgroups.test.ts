/**
 * isolator.cgroups against the real kernel: real containers through runtime.native,
 * isolator.namespaces and isolator.cgroups (no daemon), limits checked by their effect.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { IsolationTarget } from '../../core/contracts/isolator';
import { CgroupsHarness, findCgroupDirs } from '../helpers/cgroups-harness';
import { isRoot, rootReason } from '../helpers/env';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const MiB = 1024 * 1024;

async function until<T>(what: string, fn: () => T | undefined | false, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

describe.skipIf(!isRoot)(`isolator.cgroups on the real kernel${isRoot ? '' : ` (skipped: ${rootReason})`}`, () => {
  let h: CgroupsHarness;
  const ids: string[] = [];

  beforeAll(async () => {
    h = await new CgroupsHarness().init();
    for (const applet of ['mknod', 'seq']) {
      if (!existsSync(join(h.rootfs, 'bin', applet))) symlinkSync('busybox', join(h.rootfs, 'bin', applet));
    }
  });

  afterAll(() => {
    // Nothing of any container may remain in any hierarchy.
    for (const id of ids) expect(findCgroupDirs(id)).toEqual([]);
    expect(h.leftoverMounts()).toEqual([]);
    // As at berthd's shutdown: the parent cgroups this isolator made go too (unless a test
    // daemon running in parallel still has containers in them).
    h.cgroups.close();
    h.dispose();
  });

  /** Start a long-running container; returns a stop function that kills, waits and cleans up. */
  async function startLong(args: string[], hostConfig: Record<string, unknown> = {}) {
    const c = await h.start(args, { hostConfig });
    ids.push(c.id);
    const stop = async () => {
      // A frozen v1 task does not act on SIGKILL until thawed.
      if (h.cgroups.paused(c.target)) await h.cgroups.resume(c.target);
      await h.runtime.kill(c.id, c.stateDir, 'SIGKILL').catch(() => undefined);
      const exit = await h.runtime.wait(c.id, c.stateDir);
      await h.cleanup(c.target);
      return exit;
    };
    return { ...c, stop };
  }

  function dirOf(target: IsolationTarget, controller: string): string {
    const d = h.cgroups.dirsFor(target).find((x) => x.controllers.includes(controller));
    if (!d) throw new Error(`no ${controller} cgroup`);
    return d.dir;
  }

  it('reports the host layout for berth info', () => {
    const info = h.cgroups.info().cgroups;
    expect(info.driver).toBe('cgroupfs');
    expect(['1', '2', 'hybrid']).toContain(info.version);
    const mounts = readFileSync('/proc/self/mountinfo', 'utf8');
    if (/ - cgroup /.test(mounts) && / - cgroup2 /.test(mounts)) expect(info.version).toBe('hybrid');
    expect(info.controllers).toContain('memory');
  });

  it('puts the child into its cgroup in every hierarchy before exec', async () => {
    const r = await h.run(['cat', '/proc/self/cgroup']);
    ids.push(r.id);
    expect(r.exit.exitCode).toBe(0);
    // Inside its cgroup namespace the container sees its own cgroup as the root of each hierarchy.
    const lines = r.stdout.trim().split('\n');
    expect(lines.length).toBeGreaterThan(0);
    for (const l of lines) expect(l).toMatch(/:\/$/);
  });

  it('a memory hog under Memory 32 MiB is OOM-killed: exit 137, oomKilled true', async () => {
    const c = await startLong(['dd', 'if=/dev/zero', 'of=/dev/null', 'bs=64M', 'count=1'], { Memory: 32 * MiB });
    const exit = await h.runtime.wait(c.id, c.stateDir);
    expect(exit.exitCode).toBe(137);
    expect(exit.oomKilled).toBe(true);
    expect(h.cgroups.oomKilled(c.target)).toBe(true);
    await h.cleanup(c.target);
    expect(findCgroupDirs(c.id)).toEqual([]);
  });

  it('a container within its memory limit is not marked OOM-killed', async () => {
    const r = await h.run(['dd', 'if=/dev/zero', 'of=/dev/null', 'bs=1M', 'count=4'], { hostConfig: { Memory: 32 * MiB } });
    ids.push(r.id);
    expect(r.exit.exitCode).toBe(0);
    expect(r.exit.oomKilled).toBe(false);
  });

  it('a fork loop under PidsLimit 20 cannot exceed 20 processes and the container survives', async () => {
    const loop = 'i=0; while [ $i -lt 40 ]; do sleep 30 & i=$((i+1)); done';
    const c = await startLong(['sh', '-c', `sh -c '${loop}' 2>/dev/null; echo survived; exec sleep 30`], { PidsLimit: 20 });
    try {
      const pidsDir = dirOf(c.target, 'pids');
      expect(readFileSync(join(pidsDir, 'pids.max'), 'utf8').trim()).toBe('20');
      await until('the fork loop to end', () => readFileSync(h.runtime.logPath(c.id, c.stateDir), 'utf8').includes('survived'));
      const current = Number(readFileSync(join(pidsDir, 'pids.current'), 'utf8'));
      expect(current).toBeGreaterThan(1);
      expect(current).toBeLessThanOrEqual(20);
      // The kernel refused forks (v1 and v2 both count them in pids.events).
      expect(Number(/max (\d+)/.exec(readFileSync(join(pidsDir, 'pids.events'), 'utf8'))?.[1])).toBeGreaterThan(0);
      expect((await h.runtime.state(c.id, c.stateDir)).status).toBe('running');
      expect(h.cgroups.pids(c.target).length).toBe(current);
    } finally {
      await c.stop();
    }
  });

  it('NanoCpus 0.5e9 keeps a busy loop at half a core at most', async () => {
    const c = await startLong(['sh', '-c', 'while :; do :; done'], { NanoCpus: 0.5e9 });
    try {
      const read = async () => ((await h.cgroups.stats(c.target)).cpu_stats as { cpu_usage: { total_usage: number } }).cpu_usage.total_usage;
      await sleep(300);
      const u0 = await read();
      const t0 = process.hrtime.bigint();
      await sleep(2000);
      const u1 = await read();
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      const cores = (u1 - u0) / 1e9 / seconds;
      // The quota is a ceiling; on a loaded machine the loop may get less than its half core.
      expect(cores).toBeGreaterThan(0.02);
      expect(cores).toBeLessThan(0.7);
      const cpuDir = dirOf(c.target, 'cpu');
      if (existsSync(join(cpuDir, 'cpu.cfs_quota_us'))) expect(readFileSync(join(cpuDir, 'cpu.cfs_quota_us'), 'utf8').trim()).toBe('50000');
      else expect(readFileSync(join(cpuDir, 'cpu.max'), 'utf8').trim()).toBe('50000 100000');
    } finally {
      await c.stop();
    }
  });

  it('stats report memory, pids and cpu of a running container', async () => {
    const c = await startLong(['sh', '-c', 'dd if=/dev/zero of=/tmp/fill bs=1M count=8 2>/dev/null; echo ready; sleep 30'], { Memory: 64 * MiB, PidsLimit: 50 });
    try {
      await until('the container to write its file', () => readFileSync(h.runtime.logPath(c.id, c.stateDir), 'utf8').includes('ready'));
      const s = (await h.cgroups.stats(c.target)) as Record<string, Record<string, unknown>>;
      expect(s.memory_stats.usage as number).toBeGreaterThan(1 * MiB);
      expect(s.memory_stats.limit).toBe(64 * MiB);
      expect(Object.keys(s.memory_stats.stats as object).length).toBeGreaterThan(0);
      expect((s.pids_stats as { current: number }).current).toBeGreaterThanOrEqual(1);
      expect(s.pids_stats.limit).toBe(50);
      expect((s.cpu_stats.cpu_usage as { total_usage: number }).total_usage).toBeGreaterThan(0);
      expect(s.cpu_stats.online_cpus).toBeGreaterThan(0);
      expect(s.cpu_stats.system_cpu_usage as number).toBeGreaterThan(0);
      expect(Array.isArray(s.blkio_stats.io_service_bytes_recursive)).toBe(true);
    } finally {
      await c.stop();
    }
  });

  it('pause stops a counter from advancing; resume lets it advance', async () => {
    const data = mkdtempSync('/tmp/berth-cg-data-');
    const counterFile = join(data, 'counter');
    // One appended line per tick: a single write each, so a reader never sees half of one.
    const counter = () => (existsSync(counterFile) ? readFileSync(counterFile, 'utf8').split('\n').length - 1 : 0);
    const c = await startLong(['sh', '-c', 'while :; do echo x >> /data/counter; sleep 0.02; done'], { Binds: [`${data}:/data`] });
    try {
      await until('the counter to start', () => counter() >= 3);
      await h.cgroups.pause(c.target);
      expect(h.cgroups.paused(c.target)).toBe(true);
      const frozenAt = counter();
      await sleep(400);
      expect(counter()).toBe(frozenAt);
      await h.cgroups.resume(c.target);
      expect(h.cgroups.paused(c.target)).toBe(false);
      await until('the counter to advance after resume', () => counter() > frozenAt + 3, 3000);
      // Cleanup of a paused container thaws it before killing what is left.
      await h.cgroups.pause(c.target);
      await h.cleanup(c.target);
      expect(findCgroupDirs(c.id)).toEqual([]);
      expect((await h.runtime.wait(c.id, c.stateDir)).exitCode).toBe(137);
    } finally {
      await c.stop();
      rmSync(data, { recursive: true, force: true });
    }
  });

  it('update raises and lowers limits of a running container', async () => {
    const c = await startLong(['sleep', '30'], { PidsLimit: 20, Memory: 32 * MiB });
    try {
      const pidsMax = () => readFileSync(join(dirOf(c.target, 'pids'), 'pids.max'), 'utf8').trim();
      await h.cgroups.update(c.target, { PidsLimit: 50 });
      expect(pidsMax()).toBe('50');
      await h.cgroups.update(c.target, { PidsLimit: 5 });
      expect(pidsMax()).toBe('5');
      await h.cgroups.update(c.target, { PidsLimit: 0 });
      expect(pidsMax()).toBe('max');
      const mem = dirOf(c.target, 'memory');
      const limitFile = existsSync(join(mem, 'memory.limit_in_bytes')) ? 'memory.limit_in_bytes' : 'memory.max';
      await h.cgroups.update(c.target, { Memory: 48 * MiB, MemorySwap: 96 * MiB });
      expect(Number(readFileSync(join(mem, limitFile), 'utf8'))).toBe(48 * MiB);
      await h.cgroups.update(c.target, { Memory: 16 * MiB });
      expect(Number(readFileSync(join(mem, limitFile), 'utf8'))).toBe(16 * MiB);
      await expect(h.cgroups.update(c.target, { PidsLimit: -5 })).rejects.toThrow(/PidsLimit/);
    } finally {
      await c.stop();
    }
  });

  it("keeps Docker's device rules: no access to host memory devices, /dev/null works", async () => {
    const r = await h.run(['sh', '-c', 'echo ok > /dev/null && echo null-ok; mknod /tmp/kmem c 1 1 && cat /tmp/kmem > /dev/null; echo "rc=$?"']);
    ids.push(r.id);
    expect(r.stdout).toContain('null-ok');
    expect(r.stdout).toMatch(/rc=1/);
    expect(r.stderr).toMatch(/Operation not permitted/);
  });

  it("refuses bad limits with Docker's messages before anything starts", async () => {
    await expect(h.start(['true'], { hostConfig: { Memory: 1024 } })).rejects.toThrow(/Minimum memory limit allowed is 6MB/);
    await expect(h.start(['true'], { hostConfig: { CpusetCpus: '0-4095' } })).rejects.toThrow(/Requested CPUs are not available/);
    await expect(h.start(['true'], { hostConfig: { NanoCpus: 0.5e9, CpuQuota: 50000 } })).rejects.toThrow(/Conflicting options/);
  });

  it('applies BlkioWeight where the kernel weighs I/O, or refuses it by name', async () => {
    const blkio = h.cgroups.layout.byController.get('blkio') ?? h.cgroups.layout.byController.get('io');
    if (!blkio) {
      await expect(h.start(['true'], { hostConfig: { BlkioWeight: 500 } })).rejects.toThrow(/--blkio-weight needs the blkio cgroup controller/);
      return;
    }
    const c = await startLong(['sleep', '30'], { BlkioWeight: 500 }).catch((err: Error) => err);
    if (c instanceof Error) {
      expect(c.message).toMatch(/--blkio-weight needs/);
      return;
    }
    try {
      const dir = dirOf(c.target, blkio.kind === 'v1' ? 'blkio' : 'io');
      const file = ['blkio.bfq.weight', 'blkio.weight', 'io.bfq.weight', 'io.weight'].find((f) => existsSync(join(dir, f)))!;
      expect(readFileSync(join(dir, file), 'utf8')).toMatch(file === 'io.weight' ? /default 5000/ : /\b500\b/);
    } finally {
      await c.stop();
    }
  });

  it('real-time CPU limits on v1: refused without a budget, applied with cpuRtRuntime, refused on v2', async () => {
    const rt = { CpuRealtimePeriod: 100_000, CpuRealtimeRuntime: 1000 };
    await expect(h.start(['true'], { hostConfig: { CpuRealtimePeriod: 1000, CpuRealtimeRuntime: 2000 } })).rejects.toThrow('cpu-rt-runtime can not be greater than cpu-rt-period');
    const cpu = h.cgroups.layout.byController.get('cpu');
    if (cpu?.kind !== 'v1') {
      await expect(h.start(['true'], { hostConfig: rt })).rejects.toThrow(/--cpu-rt-runtime needs cgroup v1's cpu controller/);
      return;
    }
    if (!existsSync(join(cpu.ownDir, 'cpu.rt_runtime_us'))) {
      await expect(h.start(['true'], { hostConfig: rt })).rejects.toThrow(/no real-time group scheduling/);
      return;
    }
    // berth's parent cgroup has no real-time budget of its own: the kernel refuses, and the error says what gives one.
    await expect(h.start(['true'], { hostConfig: rt })).rejects.toThrow(/--cpu-rt-runtime 1000: the kernel refused it .* has 0 µs .*cpuRtRuntime/);
    const budgeted = await new CgroupsHarness().init({}, { cpuRtRuntime: 20_000 });
    const parent = budgeted.cgroups.parentDir(cpu);
    try {
      const c = await budgeted.start(['sleep', '30'], { hostConfig: rt });
      try {
        const dir = budgeted.cgroups.dirsFor(c.target).find((d) => d.controllers.includes('cpu'))!.dir;
        expect([readFileSync(join(dir, 'cpu.rt_period_us'), 'utf8').trim(), readFileSync(join(dir, 'cpu.rt_runtime_us'), 'utf8').trim()]).toEqual(['100000', '1000']);
        expect(readFileSync(join(parent, 'cpu.rt_runtime_us'), 'utf8').trim()).toBe('20000');
      } finally {
        await budgeted.runtime.kill(c.id, c.stateDir, 'SIGKILL').catch(() => undefined);
        await budgeted.runtime.wait(c.id, c.stateDir);
        await budgeted.cleanup(c.target);
      }
    } finally {
      // Leave the budget as it was. The kernel counts a removed child's share until it has freed
      // the group (after an RCU grace period), so the parent may refuse 0 for a moment.
      await until('the parent to give its real-time budget back', () => {
        try {
          if (existsSync(join(parent, 'cpu.rt_runtime_us'))) writeFileSync(join(parent, 'cpu.rt_runtime_us'), '0');
          return true;
        } catch {
          return false;
        }
      });
      budgeted.dispose();
    }
  });

  it('cleanup kills what lingers in the cgroup and removes every directory', async () => {
    const c = await h.start(['sh', '-c', 'sleep 30 & sleep 30'], {});
    ids.push(c.id);
    expect(findCgroupDirs(c.id).length).toBe(h.cgroups.dirsFor(c.target).length);
    await h.cleanup(c.target); // the container is still running: cleanup must kill it
    expect(findCgroupDirs(c.id)).toEqual([]);
    const exit = await h.runtime.wait(c.id, c.stateDir);
    expect(exit.exitCode).toBe(137);
  });

  it('setup + teardown of a container cgroup is fast (median printed)', async () => {
    const hostConfig = { Memory: 64 * MiB, NanoCpus: 1e9, PidsLimit: 100, CpuShares: 512 };
    const times: number[] = [];
    for (let i = 0; i < 30; i++) {
      const target: IsolationTarget = { containerId: `bench${process.pid}x${i}`, stateDir: mkdtempSync('/tmp/berth-cg-bench-'), hostConfig };
      ids.push(target.containerId);
      const t0 = performance.now();
      await h.cgroups.setup(target);
      await h.cgroups.cleanup(target);
      times.push(performance.now() - t0);
      rmSync(target.stateDir, { recursive: true, force: true });
    }
    times.sort((a, b) => a - b);
    const median = times[times.length >> 1];
    console.log(
      `cgroup setup+teardown per container: median ${median.toFixed(2)} ms, max ${times[times.length - 1].toFixed(2)} ms (${h.cgroups.dirsFor({ containerId: 'x', stateDir: '/nonexistent', hostConfig: {} }).length} hierarchies)`,
    );
    expect(median).toBeLessThan(50); // generous: a regression guard, not the target (5 ms)
  });
});
