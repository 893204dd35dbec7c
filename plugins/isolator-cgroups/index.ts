import { ConfigError, SkipPlugin, definePlugin, bpf } from '../../core/plugin';
import { nodeCgroupFs } from './cgfs';
import { CgroupsIsolator, type CgroupsConfig } from './isolator';
import { detectLayout } from './layout';

export { CgroupsIsolator, type CgroupsConfig, type CgroupsInfo, STATE_FILE } from './isolator';
export { detectLayout, type CgroupLayout, type CgroupVersion, type HierarchyChoice } from './layout';

const HIERARCHIES = ['auto', 'v1', 'v2'] as const;

/**
 * `isolator.cgroups`: per-container cgroups on v1, v2 and hybrid hosts with Docker's resource
 * limits, device rules (v1 devices controller or a v2 BPF device program), OOM detection, stats,
 * pause/resume and live updates.
 */
export default definePlugin<CgroupsConfig, CgroupsIsolator>({
  type: 'isolator',
  id: 'cgroups',
  defaults: { parent: 'berth', hierarchy: 'auto', cpuRtRuntime: 0 },
  parseConfig(raw) {
    const parent = raw.parent ?? 'berth';
    if (typeof parent !== 'string' || !parent.trim() || parent.split('/').some((p) => p === '..' || p === '.')) {
      throw new ConfigError('parent', 'expected a cgroup path: relative (below berthd\'s own cgroup, e.g. "berth") or absolute (e.g. "/berth"), without . or ..');
    }
    const hierarchy = raw.hierarchy ?? 'auto';
    if (!HIERARCHIES.includes(hierarchy as never)) {
      throw new ConfigError('hierarchy', `expected "auto" (every cgroup hierarchy mounted), "v1" or "v2" (only those), got ${JSON.stringify(hierarchy)}`);
    }
    const cpuRtRuntime = raw.cpuRtRuntime ?? 0;
    if (typeof cpuRtRuntime !== 'number' || !Number.isSafeInteger(cpuRtRuntime) || cpuRtRuntime < 0) {
      throw new ConfigError(
        'cpuRtRuntime',
        `expected the microseconds of real-time CPU time per period for berth's parent cgroup (0: none, as dockerd's --cpu-rt-runtime), got ${JSON.stringify(cpuRtRuntime)}`,
      );
    }
    return { parent: parent.trim().replace(/\/+$/, '') || '/', hierarchy: hierarchy as CgroupsConfig['hierarchy'], cpuRtRuntime };
  },
  init(ctx) {
    let layout;
    try {
      layout = detectLayout(undefined, ctx.config.parent.startsWith('/'), ctx.config.hierarchy);
    } catch (err) {
      // Asked for by name, a missing hierarchy is a bad config, not a reason to run unconfined.
      if (ctx.config.hierarchy !== 'auto') throw new ConfigError('hierarchy', (err as Error).message);
      throw new SkipPlugin((err as Error).message);
    }
    if (process.getuid?.() !== 0) throw new SkipPlugin('creating cgroups needs root');
    const isolator = new CgroupsIsolator(ctx.config, layout, nodeCgroupFs, bpf);
    ctx.log.debug('cgroup layout', { ...isolator.info().cgroups });
    return isolator;
  },
});
