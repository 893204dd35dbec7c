import { ConfigError, SkipPlugin } from '../../core/contracts/errors';
import { definePlugin } from '../../core/contracts/plugin';
import { nodeCgroupFs } from './cgfs';
import { CgroupsIsolator, type CgroupsConfig } from './isolator';
import { detectLayout } from './layout';

export { CgroupsIsolator, type CgroupsConfig, type CgroupsInfo, STATE_FILE } from './isolator';
export { detectLayout, type CgroupLayout, type CgroupVersion } from './layout';

/**
 * `isolator.cgroups`: per-container cgroups on v1, v2 and hybrid hosts with Docker's resource
 * limits, device rules (v1), OOM detection, stats, pause/resume and live updates.
 */
export default definePlugin<CgroupsConfig, CgroupsIsolator>({
  type: 'isolator',
  id: 'cgroups',
  defaults: { parent: 'berth' },
  parseConfig(raw) {
    const parent = raw.parent ?? 'berth';
    if (typeof parent !== 'string' || !parent.trim() || parent.split('/').some((p) => p === '..' || p === '.')) {
      throw new ConfigError('parent', 'expected a cgroup path: relative (below berthd\'s own cgroup, e.g. "berth") or absolute (e.g. "/berth"), without . or ..');
    }
    return { parent: parent.trim().replace(/\/+$/, '') || '/' };
  },
  init(ctx) {
    let layout;
    try {
      layout = detectLayout(undefined, ctx.config.parent.startsWith('/'));
    } catch (err) {
      throw new SkipPlugin((err as Error).message);
    }
    if (process.getuid?.() !== 0) throw new SkipPlugin('creating cgroups needs root');
    const isolator = new CgroupsIsolator(ctx.config, layout, nodeCgroupFs);
    ctx.log.debug('cgroup layout', { ...isolator.info() });
    return isolator;
  },
});
