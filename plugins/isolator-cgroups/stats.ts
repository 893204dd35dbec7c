/**
 * Docker's stats JSON pieces (GET /containers/ID/stats): cpu_stats, memory_stats, pids_stats and
 * blkio_stats, read from the container's v1 or v2 cgroup files.
 */
import { readFileSync } from 'node:fs';
import { totalmem } from 'node:os';
import { type CgroupDir, type CgroupFs, dirWith, readKeyed, readNumber, readTrimmed } from './cgfs';

/** USER_HZ: /proc/stat and cpuacct.stat count in 1/100 s on every Linux that berth runs on. */
const CLOCK_TICKS = 100;
const NS_PER_TICK = 1e9 / CLOCK_TICKS;

export interface BlkioEntry {
  major: number;
  minor: number;
  op: string;
  value: number;
}

/** The host's total CPU time in ns and the online CPU count, from /proc/stat (as Docker does). */
export function systemCpu(procStat = readFileSync('/proc/stat', 'utf8')): { systemCpuUsage: number; onlineCpus: number } {
  let systemCpuUsage = 0;
  let onlineCpus = 0;
  for (const line of procStat.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f[0] === 'cpu') systemCpuUsage = f.slice(1, 8).reduce((s, v) => s + Number(v), 0) * NS_PER_TICK;
    else if (/^cpu\d+$/.test(f[0])) onlineCpus++;
  }
  return { systemCpuUsage, onlineCpus };
}

/** `8:0 Read 4096` lines (v1 blkio.*_recursive), without the `Total` line. */
export function parseBlkioV1(text: string | undefined): BlkioEntry[] {
  const out: BlkioEntry[] = [];
  for (const line of (text ?? '').split('\n')) {
    const m = /^(\d+):(\d+)\s+(\S+)\s+(\d+)$/.exec(line.trim());
    if (m) out.push({ major: Number(m[1]), minor: Number(m[2]), op: m[3], value: Number(m[4]) });
  }
  return out;
}

/** `8:0 rbytes=1 wbytes=2 rios=3 wios=4 ...` lines (v2 io.stat) -> Docker's bytes and ios lists. */
export function parseIoStatV2(text: string | undefined): { bytes: BlkioEntry[]; ios: BlkioEntry[] } {
  const bytes: BlkioEntry[] = [];
  const ios: BlkioEntry[] = [];
  for (const line of (text ?? '').split('\n')) {
    const [dev, ...pairs] = line.trim().split(/\s+/);
    const m = /^(\d+):(\d+)$/.exec(dev ?? '');
    if (!m) continue;
    const kv = Object.fromEntries(pairs.map((p) => p.split('=')).map(([k, v]) => [k, Number(v)]));
    const major = Number(m[1]);
    const minor = Number(m[2]);
    bytes.push({ major, minor, op: 'read', value: kv.rbytes ?? 0 }, { major, minor, op: 'write', value: kv.wbytes ?? 0 });
    ios.push({ major, minor, op: 'read', value: kv.rios ?? 0 }, { major, minor, op: 'write', value: kv.wios ?? 0 });
  }
  return { bytes, ios };
}

/** An unlimited memory limit reads as a huge number (v1) or `max` (v2): report the host's memory, as Docker does. */
function memoryLimit(limit: number | undefined): number {
  const host = totalmem();
  return limit === undefined || limit > host ? host : limit;
}

export function readStats(fs: CgroupFs, dirs: CgroupDir[], procStat?: string): Record<string, unknown> {
  const { systemCpuUsage, onlineCpus } = systemCpu(procStat);
  const v2 = dirs.find((d) => d.kind === 'v2' && d.controllers.length) ?? (dirs.every((d) => d.kind === 'v2') ? dirs[0] : undefined);
  const stats: Record<string, unknown> = { read: new Date().toISOString() };

  // CPU: v1 cpuacct (usage in ns, user/system in ticks) and cpu.stat throttling; v2 cpu.stat in µs.
  const cpuacct = dirWith(dirs, 'cpuacct');
  const cpuDir = dirWith(dirs, 'cpu');
  const cpuUsage: Record<string, unknown> = { total_usage: 0, usage_in_kernelmode: 0, usage_in_usermode: 0 };
  const throttling = { periods: 0, throttled_periods: 0, throttled_time: 0 };
  if (cpuacct && cpuacct.kind === 'v1') {
    cpuUsage.total_usage = readNumber(fs, `${cpuacct.dir}/cpuacct.usage`) ?? 0;
    const percpu = readTrimmed(fs, `${cpuacct.dir}/cpuacct.usage_percpu`);
    if (percpu) cpuUsage.percpu_usage = percpu.split(/\s+/).map(Number);
    const st = readKeyed(fs, `${cpuacct.dir}/cpuacct.stat`);
    cpuUsage.usage_in_usermode = (st.user ?? 0) * NS_PER_TICK;
    cpuUsage.usage_in_kernelmode = (st.system ?? 0) * NS_PER_TICK;
  } else if (v2) {
    const st = readKeyed(fs, `${v2.dir}/cpu.stat`);
    cpuUsage.total_usage = (st.usage_usec ?? 0) * 1000;
    cpuUsage.usage_in_usermode = (st.user_usec ?? 0) * 1000;
    cpuUsage.usage_in_kernelmode = (st.system_usec ?? 0) * 1000;
    throttling.periods = st.nr_periods ?? 0;
    throttling.throttled_periods = st.nr_throttled ?? 0;
    throttling.throttled_time = (st.throttled_usec ?? 0) * 1000;
  }
  if (cpuDir && cpuDir.kind === 'v1') {
    const st = readKeyed(fs, `${cpuDir.dir}/cpu.stat`);
    throttling.periods = st.nr_periods ?? 0;
    throttling.throttled_periods = st.nr_throttled ?? 0;
    throttling.throttled_time = st.throttled_time ?? 0;
  }
  stats.cpu_stats = { cpu_usage: cpuUsage, system_cpu_usage: systemCpuUsage, online_cpus: onlineCpus, throttling_data: throttling };

  // Memory.
  const mem = dirWith(dirs, 'memory');
  if (mem?.kind === 'v1') {
    stats.memory_stats = {
      usage: readNumber(fs, `${mem.dir}/memory.usage_in_bytes`) ?? 0,
      max_usage: readNumber(fs, `${mem.dir}/memory.max_usage_in_bytes`) ?? 0,
      failcnt: readNumber(fs, `${mem.dir}/memory.failcnt`) ?? 0,
      limit: memoryLimit(readNumber(fs, `${mem.dir}/memory.limit_in_bytes`)),
      stats: readKeyed(fs, `${mem.dir}/memory.stat`),
    };
  } else if (mem?.kind === 'v2') {
    stats.memory_stats = {
      usage: readNumber(fs, `${mem.dir}/memory.current`) ?? 0,
      limit: memoryLimit(readNumber(fs, `${mem.dir}/memory.max`)),
      stats: readKeyed(fs, `${mem.dir}/memory.stat`),
    };
  } else stats.memory_stats = {};

  // Pids: a limit of 0 means none (Docker's convention).
  const pids = dirWith(dirs, 'pids');
  stats.pids_stats = pids ? { current: readNumber(fs, `${pids.dir}/pids.current`) ?? 0, limit: readNumber(fs, `${pids.dir}/pids.max`) ?? 0 } : {};

  // Block I/O.
  const blkio = dirWith(dirs, 'blkio');
  const io = dirWith(dirs, 'io');
  if (blkio) {
    stats.blkio_stats = {
      io_service_bytes_recursive: parseBlkioV1(readTrimmed(fs, `${blkio.dir}/blkio.throttle.io_service_bytes_recursive`) ?? readTrimmed(fs, `${blkio.dir}/blkio.throttle.io_service_bytes`)),
      io_serviced_recursive: parseBlkioV1(readTrimmed(fs, `${blkio.dir}/blkio.throttle.io_serviced_recursive`) ?? readTrimmed(fs, `${blkio.dir}/blkio.throttle.io_serviced`)),
    };
  } else if (io) {
    const { bytes, ios } = parseIoStatV2(readTrimmed(fs, `${io.dir}/io.stat`));
    stats.blkio_stats = { io_service_bytes_recursive: bytes, io_serviced_recursive: ios };
  } else stats.blkio_stats = { io_service_bytes_recursive: [], io_serviced_recursive: [] };
  return stats;
}
