/**
 * A third-party-style isolator: every container gets a read-only root filesystem, with fresh
 * tmpfs mounts where programs expect to write (/tmp and /run by default). It stacks with the
 * built-ins: `isolators: ['namespaces', 'cgroups', 'readonly']`.
 *
 * It imports only the public API (`berth/plugin`); the manifest has no side effects at import.
 */
import { ConfigError, definePlugin, type Isolator } from 'berth/plugin';
import { ReadonlyRootfsIsolator, type ReadonlyConfig } from './isolator';

export default definePlugin<ReadonlyConfig, Isolator>({
  type: 'isolator',
  id: 'readonly',
  defaults: { tmpfs: ['/tmp', '/run'], tmpfsSize: '64m' },
  parseConfig(raw) {
    const { tmpfs = ['/tmp', '/run'], tmpfsSize = '64m' } = raw;
    if (!Array.isArray(tmpfs) || tmpfs.some((p) => typeof p !== 'string' || !p.startsWith('/') || p.split('/').includes('..'))) {
      throw new ConfigError('tmpfs', `expected a list of absolute container paths without "..", got ${JSON.stringify(tmpfs)}`);
    }
    if (typeof tmpfsSize !== 'string' || !/^\d+[kmg]?$/.test(tmpfsSize)) {
      throw new ConfigError('tmpfsSize', `expected a size like 64m, got ${JSON.stringify(tmpfsSize)}`);
    }
    return { tmpfs: tmpfs as string[], tmpfsSize };
  },
  init(ctx) {
    return new ReadonlyRootfsIsolator(ctx.config);
  },
});
