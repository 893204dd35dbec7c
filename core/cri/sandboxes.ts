/**
 * Pod sandboxes. A sandbox is a berth container running berth-pause (core/cri/pause.c) from a
 * one-file image berth makes itself (no pull, no network): it holds the pod's network, IPC and UTS
 * namespaces, its hostname and resolv.conf. The network is the CNI configuration of the CRI's conf
 * dir (core/cri/cni.ts), run in the sandbox's own namespace; with none, berth's default network.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as os from 'node:os';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import tar from 'tar-stream';
import { InvalidArgumentError } from '../contracts/errors';
import type { ContainerRecord } from '../containers/record';
import type { Engine } from '../kernel/engine';
import { PAUSE_REPO } from './images';
import { pauseBinary } from '../launcher/binary';
import { PodCni, takesPortMappings } from './cni';
import type { CriContainers } from './containers';
import { HostPortProxies } from './host-ports';
import { CRI_LABEL, type CriView, criLabels, matchesSelector, nanosOf } from './labels';
import type { CriObjects } from './objects';
import type { CriStats } from './stats';
import type { Labels, NamespaceOptions, PortMapping, SandboxConfig } from './types';

const execFileP = promisify(execFile);

/** IPC-namespaced sysctls (the kernel's list; net.* follows the network namespace). */
const NAMESPACED_IPC_SYSCTL = /^(kernel\.(shm[a-z_]*|msg[a-z_]*|sem)|fs\.mqueue\.[a-z_]+)$/;

export class CriSandboxes {
  readonly cni: PodCni;
  private readonly hostPorts: HostPortProxies;
  private pause?: { binary: Buffer; tag: string };
  private pauseImport?: Promise<void>;

  constructor(
    private readonly engine: Engine,
    private readonly objects: CriObjects,
    private readonly containers: CriContainers,
    private readonly stats: CriStats,
  ) {
    this.cni = new PodCni(engine, objects);
    this.hostPorts = new HostPortProxies(engine.log.child('cri'));
  }

  /** After a berthd restart: the host port proxies of the CNI pods that still run. */
  async recover(): Promise<void> {
    for (const { rec } of this.objects.all('sandbox')) {
      const ports = JSON.parse(rec.Config.Labels?.[CRI_LABEL.hostPorts] || '[]') as PortMapping[];
      const ip = this.cni.ips(rec.Id)[0];
      if (rec.State.Running && ports.length && ip)
        await this.hostPorts.start(rec.Id, ip, ports).catch((err) => this.engine.log.warn('CRI: a pod host port could not be opened again', { pod: rec.Id, error: (err as Error).message }));
    }
  }

  close(): void {
    this.hostPorts.close();
  }

  /**
   * berth's own pause image: one layer holding berth-pause, tagged by the binary's digest. Looked
   * up at each pod start, so an image removed (crictl rmi, berth rmi) is made again.
   */
  private async ensurePauseImage(): Promise<string> {
    if (!this.pause) {
      const binary = readFileSync(pauseBinary());
      this.pause = { binary, tag: createHash('sha256').update(binary).digest('hex').slice(0, 12) };
    }
    const { binary, tag } = this.pause;
    const ref = `${PAUSE_REPO}:${tag}`;
    if (this.engine.imageStore.find(ref)) return ref;
    // Pods started together share one import.
    this.pauseImport ??= (async () => {
      const pack = tar.pack();
      pack.entry({ name: 'pause', mode: 0o755, uid: 0, gid: 0 }, binary);
      pack.finalize();
      await this.engine.importer.import(Readable.from(pack), { repo: PAUSE_REPO, tag, message: 'berth pod sandbox' });
    })().finally(() => (this.pauseImport = undefined));
    await this.pauseImport;
    return ref;
  }

  async runPodSandbox(config: SandboxConfig | undefined): Promise<string> {
    const md = config?.metadata;
    if (!md?.name || !md.uid || !md.namespace) throw new InvalidArgumentError('config.metadata: name, uid and namespace are required');
    const ns = config!.linux?.security_context?.namespace_options ?? {};
    const hostNetwork = ns.network === 'NODE';
    const cni = hostNetwork ? undefined : this.cni.choose();
    const cniConfig = cni && 'config' in cni ? cni.config : undefined;
    const image = await this.ensurePauseImage();
    // On CNI, host ports are the portmap plugin's or, without it, host-ports.ts's; not core/networks'.
    const portBindings: Record<string, { HostIp: string; HostPort: string }[]> = {};
    for (const p of cniConfig ? [] : (config!.port_mappings ?? [])) {
      if (!p.host_port) continue;
      (portBindings[`${p.container_port}/${(p.protocol ?? 'TCP').toLowerCase()}`] ??= []).push({ HostIp: p.host_ip ?? '', HostPort: String(p.host_port) });
    }
    const dns = config!.dns_config ?? {};
    const { Id } = await this.engine.containers.create(
      {
        Image: image,
        Entrypoint: ['/pause'],
        Cmd: [],
        // No hostname given: the node's, as containerd does (pod names can be longer than 64 bytes).
        Hostname: hostNetwork ? undefined : config!.hostname || os.hostname(),
        Labels: criLabels('sandbox', {
          metadata: md,
          labels: config!.labels,
          annotations: config!.annotations,
          extra: {
            [CRI_LABEL.log]: config!.log_directory ?? '',
            [CRI_LABEL.namespaces]: JSON.stringify(ns),
            ...(cniConfig && {
              [CRI_LABEL.cniNetwork]: String(cniConfig.name ?? ''),
              [CRI_LABEL.hostPorts]: JSON.stringify(takesPortMappings(cniConfig) ? [] : (config!.port_mappings ?? [])),
            }),
          },
        }),
        HostConfig: {
          // On CNI the sandbox starts with a namespace of its own (loopback only); ADD does the rest.
          NetworkMode: hostNetwork ? 'host' : cniConfig ? 'none' : 'default',
          // cgroupfs driver: the pod's cgroup below berth's own parent (isolator.cgroups).
          CgroupParent: config!.linux?.cgroup_parent ?? '',
          PidMode: ns.pid === 'NODE' ? 'host' : '',
          IpcMode: ns.ipc === 'NODE' ? 'host' : '',
          Dns: dns.servers ?? [],
          DnsSearch: dns.searches ?? [],
          DnsOptions: dns.options ?? [],
          PortBindings: portBindings,
        },
      } as never,
      `k8s_POD_${md.name}_${md.namespace}_${md.uid}_${md.attempt ?? 0}`,
    );
    try {
      await this.engine.containers.start(Id);
      const pid = this.pid(Id);
      if (cniConfig) {
        const pod = { sandboxId: Id, name: md.name, namespace: md.namespace, uid: md.uid, portMappings: config!.port_mappings ?? [] };
        await this.cni.setUp(pod, pid, cniConfig);
        if (!takesPortMappings(cniConfig)) await this.hostPorts.start(Id, this.cni.ips(Id)[0], pod.portMappings);
      }
      await this.applySysctls(pid, config!.linux?.sysctls ?? {}, ns);
    } catch (err) {
      this.hostPorts.stop(Id);
      await this.cni.tearDown(Id, this.pid(Id)).catch(() => undefined);
      await this.engine.containers.remove(Id, { force: true }).catch(() => undefined);
      throw err;
    }
    return Id;
  }

  private pid(id: string): number {
    return this.engine.containers.list().find((r) => r.Id === id)?.State.Pid ?? 0;
  }

  /**
   * The pod's sysctls, written from inside the sandbox's network and IPC namespaces (what
   * /proc/sys shows depends on the writer's namespaces). Only namespaced keys are accepted, and
   * none that would reach the host's namespaces.
   */
  private async applySysctls(pid: number, sysctls: Labels, ns: NamespaceOptions): Promise<void> {
    for (const [key, value] of Object.entries(sysctls)) {
      const net = key.startsWith('net.');
      if (!/^[a-z0-9_]+(\.[a-z0-9_-]+)+$/.test(key) || !(net || NAMESPACED_IPC_SYSCTL.test(key))) {
        throw new InvalidArgumentError(`sysctls: ${key} is not a namespaced sysctl (net.*, kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.*)`);
      }
      if ((net && ns.network === 'NODE') || (!net && ns.ipc === 'NODE')) throw new InvalidArgumentError(`sysctls: ${key} would change the host's namespace (the pod shares it)`);
      const file = `/proc/sys/${key.replace(/\./g, '/')}`;
      try {
        await execFileP('nsenter', ['--target', String(pid), '--net', '--ipc', '--', '/bin/sh', '-c', 'printf %s "$1" > "$0"', file, value]);
      } catch (err) {
        const e = err as { stderr?: string; message: string };
        throw new InvalidArgumentError(`sysctls: cannot set ${key}=${value}: ${e.stderr?.trim() || e.message}`);
      }
    }
  }

  /** Stops the pod's containers, its CNI network (DEL while the namespace lives), then the pause process. Idempotent. */
  async stopPodSandbox(id: string | undefined): Promise<void> {
    const sandbox = this.objects.find('sandbox', id);
    if (!sandbox) return;
    for (const c of this.objects.members(sandbox.rec.Id)) await this.engine.containers.stop(c.rec.Id, 0);
    this.hostPorts.stop(sandbox.rec.Id);
    await this.cni.tearDown(sandbox.rec.Id, this.pid(sandbox.rec.Id));
    await this.engine.containers.stop(sandbox.rec.Id, 0);
  }

  async removePodSandbox(id: string | undefined): Promise<void> {
    const sandbox = this.objects.find('sandbox', id);
    if (!sandbox) return;
    for (const c of this.objects.members(sandbox.rec.Id)) await this.containers.removeContainer(c.rec.Id);
    this.hostPorts.stop(sandbox.rec.Id);
    await this.cni.tearDown(sandbox.rec.Id, this.pid(sandbox.rec.Id));
    await this.engine.containers.remove(sandbox.rec.Id, { force: true });
    this.stats.forget(sandbox.rec.Id);
  }

  /** The pod's addresses: its CNI result's, or its berth network's. */
  ips(rec: ContainerRecord): string[] {
    if (rec.Config.Labels?.[CRI_LABEL.cniNetwork] !== undefined) return this.cni.ips(rec.Id);
    const settings = this.engine.networks.settings(rec.Id) as { Networks: Record<string, { IPAddress?: string }> };
    return Object.values(settings.Networks ?? {})
      .map((n) => n.IPAddress)
      .filter((ip): ip is string => !!ip);
  }

  private sandboxMessage(rec: ContainerRecord, view: CriView) {
    return {
      id: rec.Id,
      metadata: view.metadata,
      state: rec.State.Running ? 'SANDBOX_READY' : 'SANDBOX_NOTREADY',
      created_at: nanosOf(rec.Created),
      labels: view.labels,
      annotations: view.annotations,
      runtime_handler: '',
    };
  }

  podSandboxStatus(id: string | undefined, verbose: boolean) {
    const { rec, view } = this.objects.get('sandbox', id);
    const ips = this.ips(rec);
    const info: Record<string, string> = {};
    if (verbose) info.info = JSON.stringify({ pid: rec.State.Pid, hostname: rec.Config.Hostname ?? '', image: rec.Config.Image, berthContainer: rec.Name.replace(/^\//, '') });
    return {
      status: {
        ...this.sandboxMessage(rec, view),
        network: { ip: ips[0] ?? '', additional_ips: ips.slice(1).map((ip) => ({ ip })) },
        linux: { namespaces: { options: view.namespaces } },
      },
      info,
    };
  }

  listPodSandbox(filter: { id?: string; state?: { state: string } | null; label_selector?: Labels } | undefined) {
    return this.objects
      .all('sandbox')
      .filter(({ rec, view }) => {
        if (filter?.id && !rec.Id.startsWith(filter.id)) return false;
        if (filter?.state && (rec.State.Running ? 'SANDBOX_READY' : 'SANDBOX_NOTREADY') !== filter.state.state) return false;
        return matchesSelector(view.labels, filter?.label_selector);
      })
      .map(({ rec, view }) => this.sandboxMessage(rec, view));
  }
}
