/**
 * A third-party-style runtime: runtime.native with every start timed. Select it with
 * `runtime: 'timed'`; it requires runtime.native by URI, so berthd starts that one too (outside
 * the runtime slot) and hands it over through `ctx.getAll('runtime')`. The timings go to
 * `<root>/plugins/runtime.timed/timings.jsonl`, one JSON line per start.
 *
 * It imports only the public API (`berth/plugin`); the manifest has no side effects at import.
 */
import { definePlugin, SkipPlugin, type Runtime } from 'berth/plugin';
import { join } from 'node:path';
import { TimedRuntime } from './runtime';

export default definePlugin<Record<string, never>, Runtime>({
  type: 'runtime',
  id: 'timed',
  requires: ['runtime.native'],
  init(ctx) {
    const native = ctx.getAll<Runtime>('runtime').find((r) => r.name === 'native');
    if (!native) throw new SkipPlugin('runtime.native is not available to wrap');
    return new TimedRuntime(native, join(ctx.stateDir, 'timings.jsonl'));
  },
});
