import { existsSync } from 'node:fs';
import { ConfigError, SkipPlugin, NetworkService, PodNetworks, definePlugin, type Isolator } from '../../core/plugin';
import { CniRuntime } from './cni';
import { NetworkIsolator } from './isolator';
import { CniPodNetworkRunner } from './pod-network';

export interface NetworkCniConfig {
  /** Folders searched for CNI plugin binaries (CNI_PATH). */
  cniPath: string[];
}

/** `isolator.network`: bridge networks through CNI (bridge + host-local), driven by core/networks. */
export default definePlugin<NetworkCniConfig, Isolator>({
  type: 'isolator',
  id: 'network',
  requires: ['isolator.namespaces'],
  defaults: { cniPath: ['/usr/lib/cni', '/opt/cni/bin'] },
  parseConfig(raw) {
    const p = raw.cniPath;
    if (!Array.isArray(p) || !p.length || p.some((d) => typeof d !== 'string' || !d.startsWith('/'))) {
      throw new ConfigError('cniPath', 'expected a non-empty list of absolute folders holding CNI plugins');
    }
    return { cniPath: p as string[] };
  },
  init(ctx) {
    const cni = new CniRuntime(ctx.config.cniPath.filter((d) => existsSync(d)));
    for (const needed of ['bridge', 'host-local']) {
      if (!cni.find(needed)) throw new SkipPlugin(`CNI plugin "${needed}" not found in ${ctx.config.cniPath.join(':')} (Debian: apt-get install containernetworking-plugins)`);
    }
    if (!ctx.container.isRegistered(NetworkService, true)) throw new SkipPlugin('berthd offers no network service');
    if (ctx.container.isRegistered(PodNetworks, true)) ctx.container.resolve<PodNetworks>(PodNetworks).offer(new CniPodNetworkRunner());
    return new NetworkIsolator(cni, ctx.container.resolve<NetworkService>(NetworkService));
  },
});
