import { ConfigError, definePlugin, type Isolator, type IdMapping } from '../../core/plugin';
import { NamespacesIsolator, type NamespacesConfig } from './isolator';

export { DEFAULT_CAPABILITIES, DEFAULT_MASKED_PATHS, DEFAULT_READONLY_PATHS, DEFAULT_DEVICES } from './defaults';

function idMaps(key: string, v: unknown): IdMapping[] {
  const ok =
    Array.isArray(v) &&
    v.length > 0 &&
    v.every((m) => m && typeof m === 'object' && ['containerID', 'hostID', 'size'].every((k) => Number.isInteger((m as Record<string, unknown>)[k]) && (m as Record<string, number>)[k] >= 0));
  if (!ok) throw new ConfigError(key, 'expected a non-empty list of {containerID, hostID, size} with non-negative integers');
  return v as IdMapping[];
}

/** `isolator.namespaces`: pid, mount, uts, ipc, net (lo only), cgroup and optional user namespaces. */
export default definePlugin<NamespacesConfig, Isolator>({
  type: 'isolator',
  id: 'namespaces',
  defaults: { userNamespace: null },
  parseConfig(raw) {
    const config: NamespacesConfig = { userNamespace: null };
    const u = raw.userNamespace;
    if (u !== undefined && u !== null && u !== false) {
      if (typeof u !== 'object') throw new ConfigError('userNamespace', 'expected {uidMappings, gidMappings} or null');
      const { uidMappings, gidMappings } = u as Record<string, unknown>;
      config.userNamespace = {
        uidMappings: idMaps('userNamespace.uidMappings', uidMappings),
        gidMappings: idMaps('userNamespace.gidMappings', gidMappings),
      };
    }
    if (raw.dns !== undefined) {
      if (!Array.isArray(raw.dns) || raw.dns.some((d) => typeof d !== 'string')) throw new ConfigError('dns', 'expected a list of nameserver addresses');
      config.dns = raw.dns as string[];
    }
    return config;
  },
  init(ctx) {
    return new NamespacesIsolator(ctx.config);
  },
});
