/**
 * registry.distribution: the OCI distribution-spec v2 client. The catch-all registry (`fallback`):
 * it claims every host and is consulted after more specific registry plugins.
 */
import { CredentialStore, definePlugin, type Registry } from '../../core/plugin';
import { DistributionRegistry } from './client';
import { defaults, parseConfig, type DistributionConfig } from './config';

export type { DistributionConfig } from './config';
export type { DistributionRegistry } from './client';

export default definePlugin<DistributionConfig, Registry>({
  type: 'registry',
  id: 'distribution',
  defaults,
  parseConfig,
  init(ctx) {
    let store: CredentialStore | undefined;
    let looked = false;
    // Resolved on first use: the credential store may be registered after this plugin's init.
    const credentialStore = () => {
      if (!looked && ctx.container.isRegistered(CredentialStore, true)) {
        store = ctx.container.resolve<CredentialStore>(CredentialStore);
        looked = true;
      }
      return store;
    };
    return new DistributionRegistry(ctx.config, credentialStore, ctx.log.child('registry.distribution'));
  },
});
