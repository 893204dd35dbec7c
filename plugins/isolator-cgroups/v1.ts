/**
 * cgroup v1 driver: one directory per hierarchy, each controller with its own file names.
 */
import { posix } from 'node:path';
import { InvalidArgumentError } from '../../core/plugin';
import { type CgroupFs, readNumber, readTrimmed, writeControl } from './cgfs';
import { parseCpuList, RESOURCE_FLAGS, type Resources } from './resources';

/** A new v1 cpuset cgroup starts with empty cpus/mems and refuses tasks: copy them from the parent. */
export function inheritCpusetV1(fs: CgroupFs, dir: string, parent: string): void {
  for (const f of ['cpuset.cpus', 'cpuset.mems']) {
    if (readTrimmed(fs, `${dir}/${f}`)) continue;
    const value = readTrimmed(fs, `${parent}/${f}`);
    if (value) writeControl(fs, `${dir}/${f}`, value);
  }
}

/** Refuse cpus/mems the parent does not have, with Docker's message. */
export function checkCpusetAvailable(requested: string, available: string | undefined, what: 'CPUs' | 'Memory nodes', key: string): void {
  if (!available) return;
  const have = new Set(parseCpuList(available, key));
  if (parseCpuList(requested, key).some((c) => !have.has(c))) {
    throw new InvalidArgumentError(`Requested ${what} are not available - requested ${requested}, available: ${available}`);
  }
}

function isEinval(err: unknown): boolean {
  return ((err as Error).cause as NodeJS.ErrnoException | undefined)?.code === 'EINVAL';
}

/** memory.limit_in_bytes, memory.memsw.limit_in_bytes, memory.soft_limit_in_bytes, memory.swappiness. */
export function applyMemoryV1(fs: CgroupFs, dir: string, r: Resources): void {
  const limitFile = `${dir}/memory.limit_in_bytes`;
  const swapFile = `${dir}/memory.memsw.limit_in_bytes`;
  let swap = r.memorySwap;
  const haveSwapAccounting = fs.exists(swapFile);
  // runc: lifting the memory limit without a word on swap lifts the swap limit too.
  if (r.memory === -1 && swap === undefined && haveSwapAccounting) swap = -1;
  if (swap !== undefined && !haveSwapAccounting) {
    if (r.memorySwapImplied || swap === -1)
      swap = undefined; // Docker: "Memory limited without swap."
    else throw new InvalidArgumentError("--memory-swap needs swap accounting (memory.memsw.limit_in_bytes), which this host's kernel does not offer");
  }
  if (r.memory !== undefined && swap !== undefined) {
    // The kernel keeps limit <= memsw limit at every step: order the two writes accordingly.
    const current = readNumber(fs, limitFile) ?? Number.MAX_SAFE_INTEGER;
    if (swap === -1 || current < swap) {
      writeControl(fs, swapFile, swap);
      writeControl(fs, limitFile, r.memory);
    } else {
      writeControl(fs, limitFile, r.memory);
      writeControl(fs, swapFile, swap);
    }
  } else if (r.memory !== undefined) {
    try {
      writeControl(fs, limitFile, r.memory);
    } catch (err) {
      if (haveSwapAccounting && isEinval(err)) {
        throw new InvalidArgumentError('Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time', { cause: err });
      }
      throw err;
    }
  } else if (swap !== undefined) {
    writeControl(fs, swapFile, swap);
  }
  if (r.memoryReservation !== undefined) writeControl(fs, `${dir}/memory.soft_limit_in_bytes`, r.memoryReservation);
  if (r.memorySwappiness !== undefined) writeControl(fs, `${dir}/memory.swappiness`, r.memorySwappiness);
}

/** cpu.shares, cpu.cfs_period_us, cpu.cfs_quota_us. */
export function applyCpuV1(fs: CgroupFs, dir: string, r: Resources): void {
  if (r.cpuShares !== undefined) writeControl(fs, `${dir}/cpu.shares`, r.cpuShares);
  const writes: [string, number][] = [];
  if (r.cpuPeriod !== undefined) writes.push([`${dir}/cpu.cfs_period_us`, r.cpuPeriod]);
  if (r.cpuQuota !== undefined) writes.push([`${dir}/cpu.cfs_quota_us`, r.cpuQuota]);
  try {
    for (const [f, v] of writes) writeControl(fs, f, v);
  } catch (err) {
    // A new period can be refused against the old quota (or the reverse): try the other order.
    if (writes.length < 2 || !isEinval(err)) throw err;
    for (const [f, v] of [...writes].reverse()) writeControl(fs, f, v);
  }
  applyCpuRtV1(fs, dir, r);
}

/**
 * cpu.rt_period_us, cpu.rt_runtime_us: files only kernels with CONFIG_RT_GROUP_SCHED have. A
 * runtime is refused (EINVAL) past what the parent has left to hand down.
 */
export function applyCpuRtV1(fs: CgroupFs, dir: string, r: Resources): void {
  for (const [key, file, value] of [
    ['CpuRealtimePeriod', 'cpu.rt_period_us', r.cpuRtPeriod],
    ['CpuRealtimeRuntime', 'cpu.rt_runtime_us', r.cpuRtRuntime],
  ] as const) {
    if (value === undefined) continue;
    const path = `${dir}/${file}`;
    if (!fs.exists(path)) throw new InvalidArgumentError(`${RESOURCE_FLAGS[key]}: this kernel has no real-time group scheduling (no ${file}; CONFIG_RT_GROUP_SCHED) (HostConfig.${key})`);
    try {
      writeControl(fs, path, value);
    } catch (err) {
      if (!isEinval(err)) throw err;
      const parent = posix.dirname(dir);
      throw new InvalidArgumentError(
        `${RESOURCE_FLAGS[key]} ${value}: the kernel refused it for ${path}: the parent cgroup has ${readTrimmed(fs, `${parent}/cpu.rt_runtime_us`) ?? '?'} µs of real-time runtime per ${readTrimmed(fs, `${parent}/cpu.rt_period_us`) ?? '?'} µs to hand down (pluginConfig['isolator.cgroups'].cpuRtRuntime gives berth's parent cgroups a budget, as dockerd's --cpu-rt-runtime does) (HostConfig.${key})`,
      );
    }
  }
}

/** Give each level from `top` (exclusive) down to the container's parent the real-time budget where it has none. */
export function grantRtRuntimeV1(fs: CgroupFs, top: string, containerDir: string, budget: number): void {
  let dir = top;
  for (const part of posix.relative(top, posix.dirname(containerDir)).split('/').filter(Boolean)) {
    dir = posix.join(dir, part);
    if (readTrimmed(fs, `${dir}/cpu.rt_runtime_us`) === '0') writeControl(fs, `${dir}/cpu.rt_runtime_us`, budget);
  }
}

export function applyCpusetV1(fs: CgroupFs, dir: string, parent: string, r: Resources): void {
  if (r.cpusetCpus !== undefined) {
    checkCpusetAvailable(r.cpusetCpus, readTrimmed(fs, `${parent}/cpuset.effective_cpus`) || readTrimmed(fs, `${parent}/cpuset.cpus`), 'CPUs', 'CpusetCpus');
    writeControl(fs, `${dir}/cpuset.cpus`, r.cpusetCpus);
  }
  if (r.cpusetMems !== undefined) {
    checkCpusetAvailable(r.cpusetMems, readTrimmed(fs, `${parent}/cpuset.effective_mems`) || readTrimmed(fs, `${parent}/cpuset.mems`), 'Memory nodes', 'CpusetMems');
    writeControl(fs, `${dir}/cpuset.mems`, r.cpusetMems);
  }
}

export function applyPids(fs: CgroupFs, dir: string, r: Resources): void {
  if (r.pidsLimit !== undefined) writeControl(fs, `${dir}/pids.max`, r.pidsLimit < 0 ? 'max' : r.pidsLimit);
}

/** blkio.bfq.weight (BFQ scheduler) or blkio.weight (CFQ); neither means the kernel cannot weigh I/O. */
export function applyBlkioV1(fs: CgroupFs, dir: string, r: Resources): void {
  if (r.blkioWeight === undefined) return;
  const file = [`${dir}/blkio.bfq.weight`, `${dir}/blkio.weight`].find((f) => fs.exists(f));
  if (!file) throw new InvalidArgumentError('--blkio-weight needs blkio.weight or blkio.bfq.weight in the blkio cgroup (an I/O scheduler with weights: BFQ or CFQ), which this host does not have');
  writeControl(fs, file, r.blkioWeight);
}
