import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { basename, join } from 'node:path';
import { ConfigError, SkipPlugin, definePlugin, type Runtime } from '../../core/plugin';
import { OciRuntime, type OciRuntimeConfig } from './runtime';

/**
 * `runtime.oci`: runs containers with an OCI runtime binary (runc) from a bundle berth writes.
 * Selected with `runtime: 'oci'`; `pluginConfig: {'runtime.oci': {binary: 'runc', root: '...'}}`.
 */
export default definePlugin<OciRuntimeConfig, Runtime>({
  type: 'runtime',
  id: 'oci',
  defaults: { binary: 'runc', hookTimeout: 60 },
  parseConfig(raw) {
    const { binary = 'runc', root = '', hookTimeout = 60 } = raw;
    if (typeof binary !== 'string' || !binary || (binary.includes('/') && !binary.startsWith('/'))) {
      throw new ConfigError('binary', `expected a command name on PATH or an absolute path, got ${JSON.stringify(binary)}`);
    }
    if (typeof root !== 'string' || (root && !root.startsWith('/'))) {
      throw new ConfigError('root', `expected an absolute path for the runtime's state, got ${JSON.stringify(root)}`);
    }
    if (typeof hookTimeout !== 'number' || !(hookTimeout >= 1 && hookTimeout <= 3600)) {
      throw new ConfigError('hookTimeout', `expected a number of seconds from 1 to 3600, got ${JSON.stringify(hookTimeout)}`);
    }
    return { binary, root, hookTimeout };
  },
  init(ctx) {
    const { binary } = ctx.config;
    let version: string;
    try {
      version = execFileSync(binary, ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).split('\n')[0];
    } catch (err) {
      throw new SkipPlugin(`OCI runtime binary "${binary}" cannot run: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'not found on PATH (apt-get install runc)' : (err as Error).message}`);
    }
    // crun checks for a pure v1 or v2 layout and refuses a hybrid one (v1 controllers plus an
    // empty v2 mount at /sys/fs/cgroup/unified), which is what these machines have.
    if (basename(binary) === 'crun' && existsSync('/sys/fs/cgroup/unified') && existsSync('/sys/fs/cgroup/memory')) {
      throw new SkipPlugin('crun refuses hybrid cgroup hosts (v1 controllers plus /sys/fs/cgroup/unified); use runc');
    }
    ctx.log.info('OCI runtime', { binary, version });
    return new OciRuntime({ ...ctx.config, root: ctx.config.root || join(ctx.stateDir, 'runc') }, ctx.stateDir, ctx.log);
  },
});
