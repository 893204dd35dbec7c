import { promises as fs } from 'node:fs';
import { definePlugin, ConfigError, SkipPlugin, syscalls, quarantineDir, type StorageDriver } from '../../core/plugin';
import { OverlayDriver, type OverlayConfig } from './driver';

export default definePlugin<OverlayConfig, StorageDriver>({
  type: 'storage',
  id: 'overlay',
  defaults: { mountOptions: [] },
  parseConfig(raw) {
    const mountOptions = raw.mountOptions ?? [];
    if (!Array.isArray(mountOptions) || !mountOptions.every((o) => typeof o === 'string' && /^[a-z_]+(=[A-Za-z0-9_]+)?$/.test(o))) {
      throw new ConfigError('mountOptions', `expected a list of simple overlay options like "index=off", got ${JSON.stringify(mountOptions)}`);
    }
    return { mountOptions: mountOptions as string[] };
  },
  async init(ctx) {
    const filesystems = await fs.readFile('/proc/filesystems', 'utf8').catch(() => '');
    if (!/\toverlay$/m.test(filesystems)) throw new SkipPlugin('overlayfs not available: the kernel lists no overlay filesystem');
    const driver = new OverlayDriver(ctx.stateDir, syscalls, ctx.config, { dir: quarantineDir(ctx.root), log: ctx.log });
    await driver.init();
    try {
      await driver.probe();
    } catch (err) {
      throw new SkipPlugin(`overlayfs not available: test mount under ${ctx.stateDir} failed: ${(err as Error).message}`);
    }
    return driver;
  },
});
