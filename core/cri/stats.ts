/** ContainerStats, PodSandboxStats and their lists, from berth's cgroup readings (Docker stats shape). */
import type { ContainerRecord } from '../containers/record';
import type { Engine } from '../kernel/engine';
import { type CriView, matchesSelector } from './labels';
import type { CriObjects } from './objects';
import type { Labels } from './types';

interface Usage {
  cpu: { timestamp: string; usage_core_nano_seconds: { value: string }; usage_nano_cores: { value: string } };
  memory: Record<'working_set_bytes' | 'available_bytes' | 'usage_bytes' | 'rss_bytes' | 'page_faults' | 'major_page_faults', { value: string }> & { timestamp: string };
  processes: number;
  timestamp: string;
}

/** Previous CPU readings, for usage_nano_cores (a rate between two ContainerStats calls). */
interface CpuSample {
  at: bigint;
  usage: number;
}

export class CriStats {
  private readonly cpuSamples = new Map<string, CpuSample>();

  constructor(
    private readonly engine: Engine,
    private readonly objects: CriObjects,
  ) {}

  /** A removed container's samples go with it. */
  forget(id: string): void {
    this.cpuSamples.delete(id);
  }

  /** CRI CpuUsage and MemoryUsage from berth's cgroup readings (Docker stats shape). */
  private async usage(rec: ContainerRecord): Promise<Usage> {
    const raw = (await this.engine.containers.rawStats(rec.Id).catch(() => ({}))) as {
      cpu_stats?: { cpu_usage?: { total_usage?: number } };
      memory_stats?: { usage?: number; limit?: number; stats?: Record<string, number> };
      pids_stats?: { current?: number };
    };
    const at = process.hrtime.bigint();
    const timestamp = String(BigInt(Date.now()) * 1_000_000n);
    const total = raw.cpu_stats?.cpu_usage?.total_usage ?? 0;
    const before = this.cpuSamples.get(rec.Id);
    this.cpuSamples.set(rec.Id, { at, usage: total });
    const elapsed = before ? Number(at - before.at) : 0;
    const nanoCores = before && elapsed > 0 ? Math.max(0, Math.round(((total - before.usage) * 1e9) / elapsed)) : 0;
    const mem = raw.memory_stats ?? {};
    const st = mem.stats ?? {};
    const usageBytes = mem.usage ?? 0;
    // Kubernetes' working set: usage less the inactive file cache (v2 name, then v1's).
    const workingSet = Math.max(0, usageBytes - (st.inactive_file ?? st.total_inactive_file ?? 0));
    const value = (n: number) => ({ value: String(n) });
    return {
      cpu: { timestamp, usage_core_nano_seconds: value(total), usage_nano_cores: value(nanoCores) },
      memory: {
        timestamp,
        working_set_bytes: value(workingSet),
        available_bytes: value(mem.limit ? Math.max(0, mem.limit - workingSet) : 0),
        usage_bytes: value(usageBytes),
        rss_bytes: value(st.anon ?? st.rss ?? 0),
        page_faults: value(st.pgfault ?? 0),
        major_page_faults: value(st.pgmajfault ?? 0),
      },
      processes: raw.pids_stats?.current ?? 0,
      timestamp,
    };
  }

  private async containerStatsOf(rec: ContainerRecord, view: CriView) {
    return this.containerStatsFrom(rec, view, await this.usage(rec));
  }

  /** No writable_layer: the storage drivers do not measure a container's upper layer yet. */
  private containerStatsFrom(rec: ContainerRecord, view: CriView, { cpu, memory }: Usage) {
    return { attributes: { id: rec.Id, metadata: view.metadata, labels: view.labels, annotations: view.annotations }, cpu, memory };
  }

  async containerStats(id: string | undefined) {
    const { rec, view } = this.objects.get('container', id);
    return { stats: await this.containerStatsOf(rec, view) };
  }

  async listContainerStats(filter: { id?: string; pod_sandbox_id?: string; label_selector?: Labels } | undefined) {
    const hits = this.objects.all('container').filter(({ rec, view }) => {
      if (filter?.id && !rec.Id.startsWith(filter.id)) return false;
      if (filter?.pod_sandbox_id && !view.sandboxId.startsWith(filter.pod_sandbox_id)) return false;
      return matchesSelector(view.labels, filter?.label_selector);
    });
    return { stats: await Promise.all(hits.map(({ rec, view }) => this.containerStatsOf(rec, view))) };
  }

  /** A pod's figures: the sum of its pause process's and its running containers'. */
  private async podStatsOf(rec: ContainerRecord, view: CriView) {
    const members = this.objects.members(rec.Id).filter((c) => c.rec.State.Running);
    const own = await Promise.all(members.map((c) => this.usage(c.rec)));
    const containers = members.map((c, i) => this.containerStatsFrom(c.rec, c.view, own[i]));
    const pause = await this.usage(rec);
    const sum = (pick: (u: Usage) => { value: string }) => ({ value: String([pause, ...own].reduce((n, u) => n + Number(pick(u).value), 0)) });
    return {
      attributes: { id: rec.Id, metadata: view.metadata, labels: view.labels, annotations: view.annotations },
      linux: {
        cpu: { timestamp: pause.timestamp, usage_core_nano_seconds: sum((u) => u.cpu.usage_core_nano_seconds), usage_nano_cores: sum((u) => u.cpu.usage_nano_cores) },
        memory: {
          timestamp: pause.timestamp,
          working_set_bytes: sum((u) => u.memory.working_set_bytes),
          available_bytes: { value: '0' },
          usage_bytes: sum((u) => u.memory.usage_bytes),
          rss_bytes: sum((u) => u.memory.rss_bytes),
          page_faults: sum((u) => u.memory.page_faults),
          major_page_faults: sum((u) => u.memory.major_page_faults),
        },
        process: { timestamp: pause.timestamp, process_count: { value: String([pause, ...own].reduce((n, u) => n + u.processes, 0)) } },
        containers,
      },
    };
  }

  async podSandboxStats(id: string | undefined) {
    const { rec, view } = this.objects.get('sandbox', id);
    return { stats: await this.podStatsOf(rec, view) };
  }

  async listPodSandboxStats(filter: { id?: string; label_selector?: Labels } | undefined) {
    const hits = this.objects.all('sandbox').filter(({ rec, view }) => (!filter?.id || rec.Id.startsWith(filter.id)) && matchesSelector(view.labels, filter?.label_selector));
    return { stats: await Promise.all(hits.map(({ rec, view }) => this.podStatsOf(rec, view))) };
  }
}
