/**
 * Pod networking through CNI, as containerd does it: the first network configuration in the conf
 * dir (lexical order; .conf, .conflist, .json as libcni reads them), ADD in the sandbox's network
 * namespace when it starts, DEL when it stops. The config and result of each ADD are kept in the
 * sandbox's state dir, so the DEL (and the IP PodSandboxStatus reports) outlive a berthd restart
 * and a later change of the conf dir.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { PodNetworkResult, PodNetworkRun } from '../contracts/pod-network';
import type { Engine } from '../kernel/engine';
import type { CriObjects } from './objects';
import type { PortMapping } from './types';

const CONF_EXTENSIONS = ['.conf', '.conflist', '.json'];
const CACHE_FILE = 'cri-cni.json';
const IFNAME = 'eth0';

type Conflist = Record<string, unknown> & { name?: unknown; plugins?: Record<string, unknown>[] };

interface CachedAdd {
  config: Conflist;
  run: PodNetworkRun;
  result: PodNetworkResult;
}

/** The pod a CNI call is for: CNI_ARGS and the port mappings of the portmap capability. */
export interface PodIdentity {
  sandboxId: string;
  name: string;
  namespace: string;
  uid: string;
  portMappings: PortMapping[];
}

/** The network config to use, or why there is none (NetworkReady's reason). */
export type CniChoice = { config: Conflist; file: string } | { reason: string };

export class PodCni {
  constructor(
    private readonly engine: Engine,
    private readonly objects: CriObjects,
  ) {}

  private get conf() {
    return this.engine.config.cri;
  }

  /** Read at each use, so a config written after berthd started counts (containerd watches the dir). */
  choose(): CniChoice {
    const dir = this.conf.cniConfDir;
    const runner = this.engine.podNetworkRunner;
    if (!runner) return { reason: 'no CNI runner: the isolator.network plugin is not loaded' };
    let files: string[];
    try {
      files = readdirSync(dir)
        .filter((f) => CONF_EXTENSIONS.includes(path.extname(f)))
        .sort();
    } catch {
      return { reason: `cni config uninitialized: cannot read the CNI conf dir ${dir}` };
    }
    if (!files.length) return { reason: `cni config uninitialized: no network config (.conf, .conflist, .json) in ${dir}` };
    const file = path.join(dir, files[0]);
    try {
      return { config: conflistOf(JSON.parse(readFileSync(file, 'utf8')), file), file };
    } catch (err) {
      return { reason: `cni config ${file}: ${(err as Error).message}` };
    }
  }

  /** ADD in the namespace of `pid`; a failed ADD is undone before the error is thrown. */
  async setUp(pod: PodIdentity, pid: number, config: Conflist): Promise<void> {
    const run: PodNetworkRun = {
      binDirs: [this.conf.cniBinDir],
      containerId: pod.sandboxId,
      netns: `/proc/${pid}/ns/net`,
      ifname: IFNAME,
      args: { K8S_POD_NAMESPACE: pod.namespace, K8S_POD_NAME: pod.name, K8S_POD_INFRA_CONTAINER_ID: pod.sandboxId, K8S_POD_UID: pod.uid },
    };
    const withRuntime = withRuntimeConfig(config, pod.portMappings);
    const runner = this.engine.podNetworkRunner!;
    let result: PodNetworkResult;
    try {
      result = await runner.add(withRuntime, run);
    } catch (err) {
      await runner.del(withRuntime, { ...run, netns: '' }).catch(() => undefined);
      throw new Error(`pod network ${String(config.name)}: ${(err as Error).message}`);
    }
    const cached: CachedAdd = { config: withRuntime, run, result };
    await fs.writeFile(this.cacheFile(pod.sandboxId), JSON.stringify(cached, null, 2), { mode: 0o600 });
  }

  /** DEL from the cache (in the namespace while `pid` lives, else without one); idempotent. */
  async tearDown(sandboxId: string, pid: number | undefined): Promise<void> {
    const file = this.cacheFile(sandboxId);
    const cached = this.cached(sandboxId);
    if (!cached) return;
    const netns = pid && existsSync(`/proc/${pid}/ns/net`) ? `/proc/${pid}/ns/net` : '';
    const runner = this.engine.podNetworkRunner;
    if (!runner) throw new Error(`pod sandbox ${sandboxId}: its CNI network cannot be removed: the isolator.network plugin is not loaded`);
    await runner.del(cached.config, { ...cached.run, netns }, cached.result);
    await fs.rm(file, { force: true });
  }

  /** The pod's addresses from its ADD result, without prefix lengths. */
  ips(sandboxId: string): string[] {
    return (this.cached(sandboxId)?.result.ips ?? []).map((ip) => ip.address.split('/')[0]);
  }

  private cached(sandboxId: string): CachedAdd | undefined {
    try {
      return JSON.parse(readFileSync(this.cacheFile(sandboxId), 'utf8')) as CachedAdd;
    } catch {
      return undefined;
    }
  }

  private cacheFile(sandboxId: string): string {
    return path.join(this.objects.stateDir(sandboxId), CACHE_FILE);
  }
}

/** libcni's reading: a .conflist as it is; a single-plugin .conf/.json wrapped into a list. */
function conflistOf(raw: unknown, file: string): Conflist {
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw new Error('expected a JSON object');
  const o = raw as Record<string, unknown>;
  if (file.endsWith('.conflist')) {
    if (!Array.isArray(o.plugins) || !o.plugins.length) throw new Error('no plugins in the network config list');
    if (o.plugins.some((p) => !p || typeof (p as Record<string, unknown>).type !== 'string')) throw new Error('every plugin needs a "type"');
    return o as Conflist;
  }
  if (typeof o.type !== 'string' || !o.type) throw new Error('network type not found');
  const { cniVersion, name, ...plugin } = o;
  return { cniVersion, name, plugins: [plugin] };
}

/** A config with a plugin that takes the pod's host ports (portmap's capability). */
export function takesPortMappings(config: Conflist): boolean {
  return (config.plugins ?? []).some((p) => (p.capabilities as Record<string, boolean> | undefined)?.portMappings);
}

/** libcni's runtimeConfig: plugins that declare the portMappings capability get the pod's. */
function withRuntimeConfig(config: Conflist, ports: PortMapping[]): Conflist {
  const mappings = ports.filter((p) => p.host_port).map((p) => ({ hostPort: p.host_port, containerPort: p.container_port, protocol: (p.protocol ?? 'TCP').toLowerCase(), hostIP: p.host_ip ?? '' }));
  const plugins = (config.plugins ?? []).map((p) => {
    const caps = p.capabilities as Record<string, boolean> | undefined;
    return caps?.portMappings && mappings.length ? { ...p, runtimeConfig: { ...(p.runtimeConfig as object), portMappings: mappings } } : p;
  });
  return { ...config, plugins };
}
