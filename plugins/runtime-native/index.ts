import { ConfigError, definePlugin, type Runtime } from '../../core/plugin';
import { NativeRuntime, type NativeRuntimeConfig } from './runtime';

/** `runtime.native`: berth's own launcher and monitor (core/launcher). */
export default definePlugin<NativeRuntimeConfig, Runtime>({
  type: 'runtime',
  id: 'native',
  defaults: { pollIntervalMs: 250 },
  parseConfig(raw) {
    const { launcher, pollIntervalMs = 250 } = raw;
    if (launcher !== undefined && (typeof launcher !== 'string' || !launcher.startsWith('/'))) {
      throw new ConfigError('launcher', `expected an absolute path to the launcher binary, got ${JSON.stringify(launcher)}`);
    }
    if (typeof pollIntervalMs !== 'number' || !(pollIntervalMs >= 10 && pollIntervalMs <= 60_000)) {
      throw new ConfigError('pollIntervalMs', `expected a number of milliseconds from 10 to 60000, got ${JSON.stringify(pollIntervalMs)}`);
    }
    return { launcher: launcher as string | undefined, pollIntervalMs };
  },
  init(ctx) {
    return new NativeRuntime(ctx.config);
  },
});
