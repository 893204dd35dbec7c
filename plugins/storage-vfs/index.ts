import { definePlugin, ConfigError, syscalls, quarantineDir, type StorageDriver } from '../../core/plugin';
import { VfsDriver, type VfsConfig } from './driver';

export default definePlugin<VfsConfig, StorageDriver>({
  type: 'storage',
  id: 'vfs',
  defaults: { copyConcurrency: 16 },
  parseConfig(raw) {
    const copyConcurrency = raw.copyConcurrency ?? 16;
    if (typeof copyConcurrency !== 'number' || !Number.isInteger(copyConcurrency) || copyConcurrency < 1 || copyConcurrency > 1024) {
      throw new ConfigError('copyConcurrency', `expected an integer from 1 to 1024, got ${JSON.stringify(copyConcurrency)}`);
    }
    return { copyConcurrency };
  },
  async init(ctx) {
    const driver = new VfsDriver(ctx.stateDir, syscalls, ctx.config, { dir: quarantineDir(ctx.root), log: ctx.log });
    await driver.init();
    return driver;
  },
});
