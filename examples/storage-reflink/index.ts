/**
 * A third-party-style storage driver: vfs whose copies are reflinks where the filesystem has
 * them (`cp -a --reflink=auto`). Select it with `storage: { driver: 'reflink' }`.
 *
 * It imports only the public API (`berth/plugin`); the manifest has no side effects at import.
 */
import { definePlugin, SkipPlugin, type StorageDriver } from 'berth/plugin';
import { execFileSync } from 'node:child_process';
import { ReflinkDriver } from './driver';

export default definePlugin<Record<string, never>, StorageDriver>({
  type: 'storage',
  id: 'reflink',
  async init(ctx) {
    try {
      execFileSync('cp', ['--reflink=auto', '--version'], { stdio: 'ignore' });
    } catch {
      throw new SkipPlugin('needs GNU cp with --reflink (coreutils 7.5 or later)');
    }
    const driver = new ReflinkDriver(ctx.stateDir);
    await driver.init();
    return driver;
  },
});
