/**
 * Docker's HostConfig resource fields, checked with Docker's rules and messages, and the value
 * conversions runc makes for cgroup v2 (cpu.weight from shares, io.weight from blkio weight,
 * memory.swap.max from MemorySwap).
 */
import { cpus } from 'node:os';
import { InvalidArgumentError } from '../../core/plugin';

/** Docker refuses memory limits below 6 MB (linuxMinMemory). */
export const MIN_MEMORY = 6 * 1024 * 1024;
/** The CFS period Docker uses for --cpus. */
export const DEFAULT_CFS_PERIOD = 100_000;

/** What berth applies. Absent fields are left as the kernel has them. */
export interface Resources {
  /** Bytes; -1 = unlimited (used by update to lift a limit). */
  memory?: number;
  /** memory + swap in bytes; -1 = unlimited swap. */
  memorySwap?: number;
  /** True when memorySwap was not asked for but derived (Docker's default: twice the memory). */
  memorySwapImplied?: boolean;
  memoryReservation?: number;
  /** 0-100 (memory.swappiness, cgroup v1 only). */
  memorySwappiness?: number;
  cpuShares?: number;
  /** CFS quota in µs; -1 = no quota. */
  cpuQuota?: number;
  cpuPeriod?: number;
  /** Which HostConfig key set the CFS limit (for error messages). */
  cpuLimitKey?: 'NanoCpus' | 'CpuQuota' | 'CpuPeriod';
  /** Real-time scheduling period and runtime in µs (cgroup v1 with CONFIG_RT_GROUP_SCHED). */
  cpuRtPeriod?: number;
  cpuRtRuntime?: number;
  cpusetCpus?: string;
  cpusetMems?: string;
  /** -1 = unlimited. */
  pidsLimit?: number;
  blkioWeight?: number;
}

/** The HostConfig keys this plugin acts on, with the docker CLI flag that sets each (for errors). */
export const RESOURCE_FLAGS: Record<string, string> = {
  Memory: '--memory',
  MemorySwap: '--memory-swap',
  MemoryReservation: '--memory-reservation',
  MemorySwappiness: '--memory-swappiness',
  NanoCpus: '--cpus',
  CpuShares: '--cpu-shares',
  CpuQuota: '--cpu-quota',
  CpuPeriod: '--cpu-period',
  CpuRealtimePeriod: '--cpu-rt-period',
  CpuRealtimeRuntime: '--cpu-rt-runtime',
  CpusetCpus: '--cpuset-cpus',
  CpusetMems: '--cpuset-mems',
  PidsLimit: '--pids-limit',
  BlkioWeight: '--blkio-weight',
};

function int(hc: Record<string, unknown>, key: string): number | undefined {
  const v = hc[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw new InvalidArgumentError(`HostConfig.${key}: expected an integer, got ${JSON.stringify(v)}`);
  return v;
}

function str(hc: Record<string, unknown>, key: string): string | undefined {
  const v = hc[key];
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v !== 'string') throw new InvalidArgumentError(`HostConfig.${key}: expected a string, got ${JSON.stringify(v)}`);
  return v;
}

/** `0-3,5` -> [0,1,2,3,5]; throws on anything else. */
export function parseCpuList(list: string, key: string): number[] {
  const out = new Set<number>();
  for (const part of list.trim().split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!m) throw new InvalidArgumentError(`HostConfig.${key}: invalid list ${JSON.stringify(list)} (expected e.g. 0-3 or 0,1)`);
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    if (hi < lo) throw new InvalidArgumentError(`HostConfig.${key}: invalid range ${part} in ${JSON.stringify(list)}`);
    for (let i = lo; i <= hi; i++) out.add(i);
  }
  return [...out].sort((a, b) => a - b);
}

/**
 * Read and check the resource part of a HostConfig. `mode: 'create'` applies Docker's create-time
 * defaults (MemorySwap = 2 x Memory); `'update'` reads only the fields present, as `docker update`.
 */
export function parseResources(hc: Record<string, unknown>, mode: 'create' | 'update' = 'create', onlineCpus = cpus().length): Resources {
  const r: Resources = {};
  const memory = int(hc, 'Memory');
  const swap = int(hc, 'MemorySwap');
  const reservation = int(hc, 'MemoryReservation');
  if (memory !== undefined) {
    if (memory < 0) throw new InvalidArgumentError(`HostConfig.Memory: must not be negative (${memory})`);
    if (memory > 0 && memory < MIN_MEMORY) throw new InvalidArgumentError('Minimum memory limit allowed is 6MB');
    if (memory > 0) r.memory = memory;
    else if (mode === 'update') r.memory = -1;
  }
  if (swap !== undefined && swap !== 0) {
    if (swap < -1) throw new InvalidArgumentError(`HostConfig.MemorySwap: must be -1 (unlimited) or a byte count (${swap})`);
    if (swap > 0 && !r.memory) throw new InvalidArgumentError('You should always set the Memory limit when using Memoryswap limit, see usage');
    if (swap > 0 && r.memory && swap < r.memory) throw new InvalidArgumentError('Minimum memoryswap limit should be larger than memory limit, see usage');
    r.memorySwap = swap;
  } else if (mode === 'create' && r.memory && r.memory > 0) {
    // Docker: "By default, MemorySwap is set to twice the size of Memory."
    r.memorySwap = r.memory * 2;
    r.memorySwapImplied = true;
  }
  if (reservation !== undefined && reservation !== 0) {
    if (reservation < 0) throw new InvalidArgumentError(`HostConfig.MemoryReservation: must not be negative (${reservation})`);
    if (reservation < MIN_MEMORY) throw new InvalidArgumentError('Minimum memory reservation allowed is 6MB');
    if (r.memory && r.memory > 0 && r.memory < reservation) throw new InvalidArgumentError('Minimum memory limit can not be less than memory reservation limit, see usage');
    r.memoryReservation = reservation;
  }
  const swappiness = int(hc, 'MemorySwappiness');
  // -1 (what clients send when unset) keeps the parent's.
  if (swappiness !== undefined && swappiness !== -1) {
    if (swappiness < 0 || swappiness > 100) throw new InvalidArgumentError(`Invalid value: ${swappiness}, valid memory swappiness range is 0-100`);
    r.memorySwappiness = swappiness;
  }

  const shares = int(hc, 'CpuShares');
  if (shares !== undefined && shares !== 0) {
    if (shares < 0) throw new InvalidArgumentError(`HostConfig.CpuShares: must not be negative (${shares})`);
    // The kernel's bounds for cpu.shares (Docker clamps the same way).
    r.cpuShares = Math.min(Math.max(shares, 2), 262144);
  }
  const nano = int(hc, 'NanoCpus');
  const quota = int(hc, 'CpuQuota');
  const period = int(hc, 'CpuPeriod');
  if (nano !== undefined && nano !== 0) {
    if (quota) throw new InvalidArgumentError('Conflicting options: Nano CPUs and CPU Quota cannot both be set');
    if (period) throw new InvalidArgumentError('Conflicting options: Nano CPUs and CPU Period cannot both be set');
    if (nano < 0 || nano > onlineCpus * 1e9 || nano < 1e7) {
      throw new InvalidArgumentError(`Range of CPUs is from 0.01 to ${onlineCpus}.00, as there are only ${onlineCpus} CPUs available`);
    }
    r.cpuPeriod = DEFAULT_CFS_PERIOD;
    r.cpuQuota = nanoCpusToQuota(nano, DEFAULT_CFS_PERIOD);
    r.cpuLimitKey = 'NanoCpus';
  } else {
    if (period !== undefined && period !== 0) {
      if (period < 1000 || period > 1_000_000) throw new InvalidArgumentError('CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1 second (i.e. 1000000)');
      r.cpuPeriod = period;
      r.cpuLimitKey = 'CpuPeriod';
    }
    if (quota !== undefined && quota !== 0) {
      if (quota === -1) r.cpuQuota = -1;
      else if (quota < 1000) throw new InvalidArgumentError('CPU cfs quota can not be less than 1ms (i.e. 1000)');
      else r.cpuQuota = quota;
      r.cpuLimitKey = 'CpuQuota';
    }
  }
  const rtPeriod = int(hc, 'CpuRealtimePeriod');
  const rtRuntime = int(hc, 'CpuRealtimeRuntime');
  if (rtPeriod !== undefined && rtPeriod !== 0) {
    if (rtPeriod < 1) throw new InvalidArgumentError(`HostConfig.CpuRealtimePeriod: must be a positive number of microseconds (${rtPeriod})`);
    r.cpuRtPeriod = rtPeriod;
  }
  if (rtRuntime !== undefined && rtRuntime !== 0) {
    if (rtRuntime < -1) throw new InvalidArgumentError(`HostConfig.CpuRealtimeRuntime: must be microseconds, or -1 for no limit (${rtRuntime})`);
    if (r.cpuRtPeriod && rtRuntime > r.cpuRtPeriod) throw new InvalidArgumentError('cpu-rt-runtime can not be greater than cpu-rt-period');
    r.cpuRtRuntime = rtRuntime;
  }
  const cpusetCpus = str(hc, 'CpusetCpus');
  if (cpusetCpus !== undefined) {
    parseCpuList(cpusetCpus, 'CpusetCpus');
    r.cpusetCpus = cpusetCpus.trim();
  }
  const cpusetMems = str(hc, 'CpusetMems');
  if (cpusetMems !== undefined) {
    parseCpuList(cpusetMems, 'CpusetMems');
    r.cpusetMems = cpusetMems.trim();
  }

  const pids = int(hc, 'PidsLimit');
  if (pids !== undefined) {
    if (pids < -1) throw new InvalidArgumentError(`HostConfig.PidsLimit: must be a positive number, or 0 or -1 for unlimited (${pids})`);
    if (pids > 0) r.pidsLimit = pids;
    else if (mode === 'update') r.pidsLimit = -1;
  }
  const weight = int(hc, 'BlkioWeight');
  if (weight !== undefined && weight !== 0) {
    if (weight < 10 || weight > 1000) throw new InvalidArgumentError('Range of blkio weight is from 10 to 1000');
    r.blkioWeight = weight;
  }
  return r;
}

/** --cpus N (as NanoCpus) -> CFS quota in µs for `period`. */
export function nanoCpusToQuota(nanoCpus: number, period = DEFAULT_CFS_PERIOD): number {
  return Math.round((nanoCpus * period) / 1e9);
}

/** runc's ConvertCPUSharesToCgroupV2Value: [2, 262144] -> [1, 10000]; 0 = unset. */
export function sharesToWeight(shares: number): number {
  if (shares === 0) return 0;
  return Math.floor(1 + ((shares - 2) * 9999) / 262142);
}

/** runc's ConvertBlkIOToIOWeightValue: [10, 1000] -> [1, 10000]. */
export function blkioWeightToIoWeight(weight: number): number {
  if (weight === 0) return 0;
  return Math.floor(1 + ((weight - 10) * 9999) / 990);
}

/** The cpu.max line: `QUOTA PERIOD` or `max PERIOD`. */
export function cpuMax(quota: number | undefined, period: number | undefined): string {
  return `${quota === undefined || quota < 0 ? 'max' : quota} ${period ?? DEFAULT_CFS_PERIOD}`;
}

/**
 * runc's ConvertMemorySwapToCgroupV2Value: v1's memory+swap total becomes v2's swap-only limit.
 * Returns undefined when nothing is to be written.
 */
export function memorySwapMax(memorySwap: number | undefined, memory: number | undefined): string | undefined {
  if (memorySwap === undefined || memorySwap === 0) return undefined;
  if (memorySwap === -1) return 'max';
  if (memory === undefined || memory <= 0) throw new InvalidArgumentError('unable to set swap limit without memory limit');
  if (memorySwap < memory) throw new InvalidArgumentError('Minimum memoryswap limit should be larger than memory limit, see usage');
  return String(memorySwap - memory);
}

/** Every controller the given resources need, with the HostConfig key that needs it (for errors). */
export function neededControllers(r: Resources): { controller: string; key: string }[] {
  const out: { controller: string; key: string }[] = [];
  if (r.memory !== undefined) out.push({ controller: 'memory', key: 'Memory' });
  if (r.memorySwap !== undefined && !r.memorySwapImplied) out.push({ controller: 'memory', key: 'MemorySwap' });
  if (r.memoryReservation !== undefined) out.push({ controller: 'memory', key: 'MemoryReservation' });
  if (r.memorySwappiness !== undefined) out.push({ controller: 'memory', key: 'MemorySwappiness' });
  if (r.cpuShares !== undefined) out.push({ controller: 'cpu', key: 'CpuShares' });
  if (r.cpuQuota !== undefined || r.cpuPeriod !== undefined) out.push({ controller: 'cpu', key: r.cpuLimitKey ?? 'CpuQuota' });
  if (r.cpuRtPeriod !== undefined) out.push({ controller: 'cpu', key: 'CpuRealtimePeriod' });
  if (r.cpuRtRuntime !== undefined) out.push({ controller: 'cpu', key: 'CpuRealtimeRuntime' });
  if (r.cpusetCpus !== undefined) out.push({ controller: 'cpuset', key: 'CpusetCpus' });
  if (r.cpusetMems !== undefined) out.push({ controller: 'cpuset', key: 'CpusetMems' });
  if (r.pidsLimit !== undefined) out.push({ controller: 'pids', key: 'PidsLimit' });
  if (r.blkioWeight !== undefined) out.push({ controller: 'blkio', key: 'BlkioWeight' });
  return out;
}
