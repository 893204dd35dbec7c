/**
 * cgroup v2 driver: one directory, controllers enabled from the parent's cgroup.subtree_control,
 * v2 file names and value scales (runc's conversions).
 */
import { BerthError, HTTP_STATUS, InvalidArgumentError } from '../../core/plugin';
import { type CgroupFs, readTrimmed, writeControl } from './cgfs';
import { checkCpusetAvailable } from './v1';
import { blkioWeightToIoWeight, cpuMax, DEFAULT_CFS_PERIOD, memorySwapMax, RESOURCE_FLAGS, type Resources, sharesToWeight } from './resources';

/** Controllers berth turns on for the cgroups below it, where the parent offers them. */
export const V2_CONTROLLERS = ['cpu', 'cpuset', 'io', 'memory', 'pids'];

/**
 * Make `wanted` controllers (those `dir` offers) available to its children. Fails with EBUSY when
 * `dir` holds processes and is not the root (v2's no-internal-processes rule): berth never moves
 * processes out of a cgroup, so that is reported, not worked around.
 */
export function enableSubtreeControllers(fs: CgroupFs, dir: string, wanted: string[] = V2_CONTROLLERS): void {
  const offered = (readTrimmed(fs, `${dir}/cgroup.controllers`) ?? '').split(/\s+/);
  const enabled = new Set((readTrimmed(fs, `${dir}/cgroup.subtree_control`) ?? '').split(/\s+/));
  const missing = wanted.filter((c) => offered.includes(c) && !enabled.has(c));
  if (!missing.length) return;
  try {
    fs.write(`${dir}/cgroup.subtree_control`, missing.map((c) => `+${c}`).join(' '));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new BerthError(
      code === 'EBUSY'
        ? `cgroup: cannot enable ${missing.join(', ')} for the cgroups below ${dir}: it holds processes (cgroup v2 allows controllers only below cgroups without processes). ` +
            `Set pluginConfig['isolator.cgroups'].parent to a cgroup path without processes, e.g. "/berth"`
        : `cgroup: cannot enable ${missing.join(', ')} in ${dir}/cgroup.subtree_control: ${code ?? (err as Error).message}`,
      HTTP_STATUS.Internal,
      { cause: err },
    );
  }
}

/** memory.max, memory.swap.max (swap only, not memory + swap as in v1), memory.low. */
export function applyMemoryV2(fs: CgroupFs, dir: string, r: Resources): void {
  if (r.memorySwappiness !== undefined) throw new InvalidArgumentError("--memory-swappiness needs cgroup v1's memory controller: cgroup v2 has no per-cgroup swappiness (HostConfig.MemorySwappiness)");
  if (r.memory !== undefined) writeControl(fs, `${dir}/memory.max`, r.memory < 0 ? 'max' : r.memory);
  let swap = r.memorySwap;
  if (r.memory === -1 && swap === undefined) swap = -1;
  const swapMax = memorySwapMax(swap, r.memory !== undefined && r.memory > 0 ? r.memory : undefined);
  if (swapMax !== undefined) {
    if (fs.exists(`${dir}/memory.swap.max`)) writeControl(fs, `${dir}/memory.swap.max`, swapMax);
    else if (!r.memorySwapImplied && swap !== -1) {
      throw new InvalidArgumentError("--memory-swap needs swap accounting (memory.swap.max), which this host's kernel does not offer");
    }
  }
  if (r.memoryReservation !== undefined) writeControl(fs, `${dir}/memory.low`, r.memoryReservation);
}

/** cpu.weight from shares, cpu.max `QUOTA PERIOD` (keeping the half that is not changed). */
export function applyCpuV2(fs: CgroupFs, dir: string, r: Resources): void {
  const rtKey = r.cpuRtRuntime !== undefined ? 'CpuRealtimeRuntime' : r.cpuRtPeriod !== undefined ? 'CpuRealtimePeriod' : undefined;
  if (rtKey) throw new InvalidArgumentError(`${RESOURCE_FLAGS[rtKey]} needs cgroup v1's cpu controller: cgroup v2 has no real-time group scheduling (HostConfig.${rtKey})`);
  if (r.cpuShares !== undefined) writeControl(fs, `${dir}/cpu.weight`, sharesToWeight(r.cpuShares));
  if (r.cpuQuota === undefined && r.cpuPeriod === undefined) return;
  const [curQuota, curPeriod] = (readTrimmed(fs, `${dir}/cpu.max`) ?? `max ${DEFAULT_CFS_PERIOD}`).split(/\s+/);
  const quota = r.cpuQuota ?? (curQuota === 'max' || curQuota === undefined ? undefined : Number(curQuota));
  const period = r.cpuPeriod ?? (Number(curPeriod) || DEFAULT_CFS_PERIOD);
  writeControl(fs, `${dir}/cpu.max`, cpuMax(quota, period));
}

export function applyCpusetV2(fs: CgroupFs, dir: string, parent: string, r: Resources): void {
  if (r.cpusetCpus !== undefined) {
    checkCpusetAvailable(r.cpusetCpus, readTrimmed(fs, `${parent}/cpuset.cpus.effective`), 'CPUs', 'CpusetCpus');
    writeControl(fs, `${dir}/cpuset.cpus`, r.cpusetCpus);
  }
  if (r.cpusetMems !== undefined) {
    checkCpusetAvailable(r.cpusetMems, readTrimmed(fs, `${parent}/cpuset.mems.effective`), 'Memory nodes', 'CpusetMems');
    writeControl(fs, `${dir}/cpuset.mems`, r.cpusetMems);
  }
}

/** io.bfq.weight takes blkio's 10..1000 scale as is; io.weight wants 1..10000. */
export function applyIoV2(fs: CgroupFs, dir: string, r: Resources): void {
  if (r.blkioWeight === undefined) return;
  if (fs.exists(`${dir}/io.bfq.weight`)) writeControl(fs, `${dir}/io.bfq.weight`, r.blkioWeight);
  else if (fs.exists(`${dir}/io.weight`)) writeControl(fs, `${dir}/io.weight`, `default ${blkioWeightToIoWeight(r.blkioWeight)}`);
  else throw new InvalidArgumentError('--blkio-weight needs io.weight or io.bfq.weight in the io cgroup, which this host does not have');
}
