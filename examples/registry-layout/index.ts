/**
 * A third-party-style registry plugin: serves images from a folder of OCI image layouts, with
 * no registry server. `layout.local/NAME:TAG` reads `<dir>/NAME/index.json` (the manifest whose
 * `org.opencontainers.image.ref.name` annotation is TAG) and `<dir>/NAME/blobs/sha256/...`.
 *
 * It imports only the public API (`berth/plugin`); the manifest has no side effects at import.
 */
import { ConfigError, definePlugin, type Registry } from 'berth/plugin';
import { LayoutRegistry, type LayoutConfig } from './registry';

export default definePlugin<LayoutConfig, Registry>({
  type: 'registry',
  id: 'layout',
  defaults: { host: 'layout.local' },
  parseConfig(raw) {
    const { dir, host = 'layout.local' } = raw;
    if (typeof dir !== 'string' || !dir.startsWith('/')) {
      throw new ConfigError('dir', `expected the absolute path of a folder of OCI image layouts, got ${JSON.stringify(dir)}`);
    }
    if (typeof host !== 'string' || !/^[a-z0-9-]+(\.[a-z0-9-]+)+$/.test(host)) {
      throw new ConfigError('host', `expected a dotted host name that references can start with (like layout.local), got ${JSON.stringify(host)}`);
    }
    return { dir, host };
  },
  init(ctx) {
    ctx.log.info('serving OCI layouts', { dir: ctx.config.dir, host: ctx.config.host });
    return new LayoutRegistry(ctx.config);
  },
});
