/**
 * The CRI RuntimeService on berth's container manager. A pod sandbox is a berth container running
 * berth-pause (core/cri/pause.c) from a one-file image berth makes itself (no pull, no network):
 * it holds the pod's network (a berth network, through CNI), IPC and UTS namespaces, its hostname
 * and resolv.conf. The pod's containers are berth containers that share those namespaces through
 * the `container:<sandbox id>` modes of isolator.namespaces. Each container has a pid namespace of
 * its own (the v1 PodSpec default) unless namespace_options.pid is POD (the sandbox's, with pause
 * as init) or NODE (the host's).
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import tar from 'tar-stream';
import { ConflictError, InvalidArgumentError, NotFoundError, TimeoutError, UnavailableError } from '../contracts/errors';
import type { ContainerRecord } from '../containers/record';
import type { Engine } from '../kernel/engine';
import { ENGINE_VERSION } from '../kernel/engine';
import { closeStdinFrame, FrameDecoder, MonitorFrame, monitorReady, resizeFrame, signalFrame, stdinFrame } from '../launcher/attach';
import { pauseBinary } from '../launcher/binary';
import { connectUnix } from '../util/unix-socket';
import { findImage } from './images';
import { CRI_LABEL, type CriView, criLabels, criView, matchesSelector, nanosOf } from './labels';
import { CriLogFollower } from './logs';
import { type CommandStreams, dialTcp, type StreamingServer } from './streaming/server';

const execFileP = promisify(execFile);

/** ExecSync output is capped, as the CRI asks (CVE-2022-1708). */
const EXEC_OUTPUT_CAP = 16 * 1024 * 1024;

type Labels = Record<string, string>;

interface SandboxConfig {
  metadata?: { name?: string; uid?: string; namespace?: string; attempt?: number };
  hostname?: string;
  log_directory?: string;
  dns_config?: { servers?: string[]; searches?: string[]; options?: string[] };
  port_mappings?: { protocol?: string; container_port?: number; host_port?: number; host_ip?: string }[];
  labels?: Labels;
  annotations?: Labels;
  linux?: { security_context?: { namespace_options?: { network?: string; pid?: string; ipc?: string } }; sysctls?: Labels };
}

interface ContainerConfig {
  metadata?: { name?: string; attempt?: number };
  image?: { image?: string };
  command?: string[];
  args?: string[];
  working_dir?: string;
  envs?: { key: string; value: string }[];
  mounts?: { container_path?: string; host_path?: string; readonly?: boolean; propagation?: string }[];
  labels?: Labels;
  annotations?: Labels;
  log_path?: string;
  stdin?: boolean;
  stdin_once?: boolean;
  tty?: boolean;
  linux?: {
    resources?: Resources;
    security_context?: {
      capabilities?: { add_capabilities?: string[]; drop_capabilities?: string[] };
      privileged?: boolean;
      namespace_options?: { pid?: string } | null;
      run_as_user?: { value: string | number } | null;
      run_as_group?: { value: string | number } | null;
      run_as_username?: string;
      readonly_rootfs?: boolean;
      supplemental_groups?: (string | number)[];
      no_new_privs?: boolean;
      masked_paths?: string[];
      readonly_paths?: string[];
      seccomp_profile_path?: string;
      seccomp?: { profile_type?: string; localhost_ref?: string } | null;
    };
  };
}

interface Resources {
  cpu_period?: string | number;
  cpu_quota?: string | number;
  cpu_shares?: string | number;
  memory_limit_in_bytes?: string | number;
  cpuset_cpus?: string;
  cpuset_mems?: string;
}

type SecurityContext = NonNullable<NonNullable<ContainerConfig['linux']>['security_context']>;

/**
 * Docker SecurityOpt for the CRI's seccomp choice: the `seccomp` profile, else the older
 * `seccomp_profile_path`; none given is unconfined, as kubelet means it.
 */
function seccompOpts(sec: SecurityContext): string[] {
  // A privileged container runs unconfined whatever profile it names (containerd does the same).
  if (sec.privileged) return ['seccomp=unconfined'];
  const localhost = (file: string) => {
    if (!path.isAbsolute(file)) throw new InvalidArgumentError(`seccomp: the localhost profile must be an absolute path, got ${JSON.stringify(file)}`);
    try {
      return [`seccomp=${readFileSync(file, 'utf8')}`];
    } catch (err) {
      throw new InvalidArgumentError(`seccomp: cannot read the localhost profile ${file}: ${(err as Error).message}`);
    }
  };
  if (sec.seccomp) {
    if (sec.seccomp.profile_type === 'Unconfined') return ['seccomp=unconfined'];
    if (sec.seccomp.profile_type === 'Localhost') return localhost(sec.seccomp.localhost_ref ?? '');
    return [];
  }
  const p = sec.seccomp_profile_path ?? '';
  if (p === '' || p === 'unconfined') return ['seccomp=unconfined'];
  if (p === 'runtime/default' || p === 'docker/default') return [];
  if (p.startsWith('localhost/')) return localhost(p.slice('localhost/'.length));
  throw new InvalidArgumentError(`seccomp_profile_path: expected unconfined, runtime/default or localhost/<path>, got ${JSON.stringify(p)}`);
}

/** IPC-namespaced sysctls (the kernel's list; net.* follows the network namespace). */
const NAMESPACED_IPC_SYSCTL = /^(kernel\.(shm[a-z_]*|msg[a-z_]*|sem)|fs\.mqueue\.[a-z_]+)$/;

const PROPAGATION: Record<string, string> = { PROPAGATION_PRIVATE: 'rprivate', PROPAGATION_HOST_TO_CONTAINER: 'rslave', PROPAGATION_BIDIRECTIONAL: 'rshared' };

/** Docker HostConfig resource keys from the CRI's; zero means not set. */
function resourcesOf(r: Resources | undefined): Record<string, unknown> {
  const n = (v: string | number | undefined) => Number(v ?? 0);
  const out: Record<string, unknown> = {};
  if (n(r?.memory_limit_in_bytes)) out.Memory = n(r?.memory_limit_in_bytes);
  if (n(r?.cpu_shares)) out.CpuShares = n(r?.cpu_shares);
  if (n(r?.cpu_quota)) out.CpuQuota = n(r?.cpu_quota);
  if (n(r?.cpu_period)) out.CpuPeriod = n(r?.cpu_period);
  if (r?.cpuset_cpus) out.CpusetCpus = r.cpuset_cpus;
  if (r?.cpuset_mems) out.CpusetMems = r.cpuset_mems;
  return out;
}

function containerState(rec: ContainerRecord): string {
  switch (rec.State.Status) {
    case 'created':
      return 'CONTAINER_CREATED';
    case 'running':
    case 'paused':
    case 'restarting':
      return 'CONTAINER_RUNNING';
    case 'exited':
    case 'dead':
      return 'CONTAINER_EXITED';
    default:
      return 'CONTAINER_UNKNOWN';
  }
}

/** Relays a monitor connection (core/launcher/attach.ts) to the client's streams; resolves when it closes. */
function relay(monitor: Socket, streams: CommandStreams): Promise<void> {
  const decoder = new FrameDecoder(({ type, payload }) => {
    if (type === MonitorFrame.stdout) streams.stdout?.write(payload);
    else if (type === MonitorFrame.stderr) (streams.stderr ?? streams.stdout)?.write(payload);
  });
  streams.stdin?.on('data', (c: Buffer) => monitor.write(stdinFrame(c)));
  streams.stdin?.on('end', () => monitor.writable && monitor.write(closeStdinFrame()));
  streams.onResize(({ width, height }) => monitor.writable && monitor.write(resizeFrame(height, width)));
  return new Promise((resolve) => {
    monitor.on('data', (c: Buffer) => decoder.push(c));
    monitor.on('close', () => resolve());
    monitor.on('error', () => resolve());
    monitor.resume();
  });
}

interface Usage {
  cpu: { timestamp: string; usage_core_nano_seconds: { value: string }; usage_nano_cores: { value: string } };
  memory: Record<'working_set_bytes' | 'available_bytes' | 'usage_bytes' | 'rss_bytes' | 'page_faults' | 'major_page_faults', { value: string }> & { timestamp: string };
  processes: number;
  timestamp: string;
}

/** Previous CPU readings, for usage_nano_cores (a rate between two ContainerStats calls). */
interface CpuSample {
  at: bigint;
  usage: number;
}

export class CriRuntime {
  private readonly followers = new Map<string, CriLogFollower>();
  private readonly cpuSamples = new Map<string, CpuSample>();
  private pauseImage?: Promise<string>;
  streaming?: StreamingServer;

  constructor(private readonly engine: Engine) {
    // A container's exit is when its log is complete: convert the rest and stop following.
    engine.containers.on('exit', (id: string) => void this.stopFollowing(id));
  }

  /** After a berthd restart: follow the logs of CRI containers that still run. */
  async recover(): Promise<void> {
    for (const rec of this.engine.containers.list()) {
      const view = criView(rec);
      if (view?.kind === 'container' && view.log && rec.State.Running) await this.follow(rec, view);
    }
  }

  async close(): Promise<void> {
    for (const f of this.followers.values()) await f.stop();
    this.followers.clear();
  }

  // ---- lookups ---------------------------------------------------------------------------

  private all(kind: 'sandbox' | 'container'): { rec: ContainerRecord; view: CriView }[] {
    return this.engine.containers.list().flatMap((rec) => {
      const view = criView(rec);
      return view?.kind === kind ? [{ rec, view }] : [];
    });
  }

  /** A sandbox or container by full ID or unique prefix (crictl accepts prefixes). */
  private find(kind: 'sandbox' | 'container', id: string | undefined): { rec: ContainerRecord; view: CriView } | undefined {
    if (!id) throw new InvalidArgumentError(`${kind === 'sandbox' ? 'pod_sandbox_id' : 'container_id'} is required`);
    const hits = this.all(kind).filter(({ rec }) => rec.Id.startsWith(id));
    if (hits.length > 1) throw new InvalidArgumentError(`${kind} ID prefix ${id} is ambiguous`);
    return hits[0];
  }

  private get(kind: 'sandbox' | 'container', id: string | undefined) {
    const hit = this.find(kind, id);
    if (!hit) throw new NotFoundError(`${kind === 'sandbox' ? 'pod sandbox' : 'container'} ${id} not found`);
    return hit;
  }

  // ---- the pause image -------------------------------------------------------------------

  /** berth's own pause image: one layer holding berth-pause, tagged by the binary's digest. */
  private ensurePauseImage(): Promise<string> {
    this.pauseImage ??= (async () => {
      const binary = readFileSync(pauseBinary());
      const tag = createHash('sha256').update(binary).digest('hex').slice(0, 12);
      const ref = `berth.local/pause:${tag}`;
      if (this.engine.imageStore.find(ref)) return ref;
      const pack = tar.pack();
      pack.entry({ name: 'pause', mode: 0o755, uid: 0, gid: 0 }, binary);
      pack.finalize();
      await this.engine.importer.import(Readable.from(pack), { repo: 'berth.local/pause', tag, message: 'berth pod sandbox' });
      return ref;
    })();
    this.pauseImage.catch(() => (this.pauseImage = undefined));
    return this.pauseImage;
  }

  // ---- sandboxes -------------------------------------------------------------------------

  async runPodSandbox(config: SandboxConfig | undefined): Promise<string> {
    const md = config?.metadata;
    if (!md?.name || !md.uid || !md.namespace) throw new InvalidArgumentError('config.metadata: name, uid and namespace are required');
    const ns = config!.linux?.security_context?.namespace_options ?? {};
    const hostNetwork = ns.network === 'NODE';
    const image = await this.ensurePauseImage();
    const portBindings: Record<string, { HostIp: string; HostPort: string }[]> = {};
    for (const p of config!.port_mappings ?? []) {
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
          extra: { [CRI_LABEL.log]: config!.log_directory ?? '', [CRI_LABEL.namespaces]: JSON.stringify(ns) },
        }),
        HostConfig: {
          NetworkMode: hostNetwork ? 'host' : 'default',
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
      await this.applySysctls(Id, config!.linux?.sysctls ?? {}, ns);
    } catch (err) {
      await this.engine.containers.remove(Id, { force: true }).catch(() => undefined);
      throw err;
    }
    return Id;
  }

  /**
   * The pod's sysctls, written from inside the sandbox's network and IPC namespaces (what
   * /proc/sys shows depends on the writer's namespaces). Only namespaced keys are accepted, and
   * none that would reach the host's namespaces.
   */
  private async applySysctls(id: string, sysctls: Labels, ns: { network?: string; ipc?: string }): Promise<void> {
    const entries = Object.entries(sysctls);
    if (!entries.length) return;
    const pid = this.engine.containers.list().find((r) => r.Id === id)?.State.Pid;
    for (const [key, value] of entries) {
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

  /** Stops the pod's containers, then the pause process; the network goes with it. Idempotent. */
  async stopPodSandbox(id: string | undefined): Promise<void> {
    const sandbox = this.find('sandbox', id);
    if (!sandbox) return;
    for (const c of this.all('container').filter((c) => c.view.sandboxId === sandbox.rec.Id)) {
      await this.engine.containers.stop(c.rec.Id, 0);
    }
    await this.engine.containers.stop(sandbox.rec.Id, 0);
  }

  async removePodSandbox(id: string | undefined): Promise<void> {
    const sandbox = this.find('sandbox', id);
    if (!sandbox) return;
    for (const c of this.all('container').filter((c) => c.view.sandboxId === sandbox.rec.Id)) await this.removeContainer(c.rec.Id);
    await this.engine.containers.remove(sandbox.rec.Id, { force: true });
    this.cpuSamples.delete(sandbox.rec.Id);
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
    const { rec, view } = this.get('sandbox', id);
    const ips = this.podIps(rec.Id);
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
    return this.all('sandbox')
      .filter(({ rec, view }) => {
        if (filter?.id && !rec.Id.startsWith(filter.id)) return false;
        if (filter?.state && (rec.State.Running ? 'SANDBOX_READY' : 'SANDBOX_NOTREADY') !== filter.state.state) return false;
        return matchesSelector(view.labels, filter?.label_selector);
      })
      .map(({ rec, view }) => this.sandboxMessage(rec, view));
  }

  // ---- containers ------------------------------------------------------------------------

  async createContainer(sandboxId: string | undefined, config: ContainerConfig | undefined, sandboxConfig: SandboxConfig | undefined): Promise<string> {
    const sandbox = this.get('sandbox', sandboxId);
    if (!sandbox.rec.State.Running) throw new ConflictError(`pod sandbox ${sandbox.rec.Id} is not ready`);
    const md = config?.metadata;
    if (!md?.name) throw new InvalidArgumentError('config.metadata.name is required');
    const wanted = config!.image?.image;
    const image = findImage(this.engine, wanted);
    if (!image) throw new NotFoundError(`image ${wanted} is not present: pull it first`);
    const sec = config!.linux?.security_context ?? {};
    const uid = sec.run_as_user ? String(sec.run_as_user.value) : sec.run_as_username || '';
    if (sec.run_as_group && !uid) throw new InvalidArgumentError('run_as_group needs run_as_user or run_as_username');
    const user = uid && sec.run_as_group ? `${uid}:${sec.run_as_group.value}` : uid;
    const logDir = sandboxConfig?.log_directory || sandbox.view.log;
    const logPath = logDir && config!.log_path ? path.join(logDir, config!.log_path) : '';
    const hostNetwork = sandbox.view.namespaces.network === 'NODE';
    const share = `container:${sandbox.rec.Id}`;
    // The container's own pid option (kubelet copies the pod's there), else the pod's: NODE is the
    // host's, POD the sandbox's (pause is its init), CONTAINER one of its own.
    const pid = sec.namespace_options?.pid || sandbox.view.namespaces.pid;
    const pidMode = pid === 'NODE' ? 'host' : pid === 'POD' ? share : '';
    const pod = sandbox.view.metadata as { name?: string; namespace?: string; uid?: string };
    const mounts = (config!.mounts ?? []).map((m) => {
      if (!m.host_path?.startsWith('/') || !m.container_path?.startsWith('/')) throw new InvalidArgumentError(`mounts: host_path and container_path must be absolute (got ${JSON.stringify(m.host_path)} -> ${JSON.stringify(m.container_path)})`);
      return `${m.host_path}:${m.container_path}:${m.readonly ? 'ro' : 'rw'},${PROPAGATION[m.propagation ?? 'PROPAGATION_PRIVATE'] ?? 'rprivate'}`;
    });
    const { Id } = await this.engine.containers.create(
      {
        Image: image.id,
        ...(config!.command?.length ? { Entrypoint: config!.command } : {}),
        Cmd: config!.args ?? [],
        Env: (config!.envs ?? []).map((e) => `${e.key}=${e.value}`),
        WorkingDir: config!.working_dir ?? '',
        User: user,
        Tty: !!config!.tty,
        OpenStdin: !!config!.stdin,
        StdinOnce: !!config!.stdin_once,
        Hostname: sandbox.rec.Config.Hostname,
        Labels: criLabels('container', {
          metadata: md,
          labels: config!.labels,
          annotations: config!.annotations,
          extra: { [CRI_LABEL.sandbox]: sandbox.rec.Id, [CRI_LABEL.log]: logPath, [CRI_LABEL.image]: wanted ?? '' },
        }),
        HostConfig: {
          NetworkMode: hostNetwork ? 'host' : share,
          PidMode: pidMode,
          IpcMode: share,
          UTSMode: share,
          Binds: mounts,
          Privileged: !!sec.privileged,
          CapAdd: sec.capabilities?.add_capabilities ?? [],
          CapDrop: sec.capabilities?.drop_capabilities ?? [],
          ReadonlyRootfs: !!sec.readonly_rootfs,
          GroupAdd: (sec.supplemental_groups ?? []).map(String),
          SecurityOpt: [...seccompOpts(sec), ...(sec.no_new_privs ? ['no-new-privileges'] : [])],
          // Empty lists are kubelet's "runtime default"; privileged containers get none.
          ...(sec.masked_paths?.length ? { MaskedPaths: sec.masked_paths } : {}),
          ...(sec.readonly_paths?.length ? { ReadonlyPaths: sec.readonly_paths } : {}),
          ...resourcesOf(config!.linux?.resources),
        },
      } as never,
      `k8s_${md.name}_${pod.name}_${pod.namespace}_${pod.uid}_${md.attempt ?? 0}`,
    );
    return Id;
  }

  async startContainer(id: string | undefined): Promise<void> {
    const { rec, view } = this.get('container', id);
    const sandbox = this.find('sandbox', view.sandboxId);
    if (!sandbox?.rec.State.Running) throw new ConflictError(`pod sandbox ${view.sandboxId} of container ${rec.Id} is not ready`);
    // Following before the start: the converter reads the json-file log from its first line.
    if (view.log) await this.follow(rec, view);
    await this.engine.containers.start(rec.Id);
  }

  private async follow(rec: ContainerRecord, view: CriView): Promise<void> {
    await this.followers.get(rec.Id)?.stop();
    const stateDir = path.join(this.engine.config.root, 'containers', rec.Id);
    const follower = new CriLogFollower(this.engine.containers.logPath(rec.Id), view.log, path.join(stateDir, 'cri-log.offset'));
    this.followers.set(rec.Id, follower);
    await follower.start();
  }

  private async stopFollowing(id: string): Promise<void> {
    const f = this.followers.get(id);
    this.followers.delete(id);
    await f?.stop();
  }

  async stopContainer(id: string | undefined, timeout: number): Promise<void> {
    const { rec } = this.get('container', id);
    await this.engine.containers.stop(rec.Id, Math.max(0, timeout));
  }

  async removeContainer(id: string | undefined): Promise<void> {
    const hit = this.find('container', id);
    if (!hit) return;
    await this.engine.containers.remove(hit.rec.Id, { force: true });
    this.cpuSamples.delete(hit.rec.Id);
    await this.stopFollowing(hit.rec.Id);
  }

  async reopenContainerLog(id: string | undefined): Promise<void> {
    const { rec } = this.get('container', id);
    const f = this.followers.get(rec.Id);
    if (!rec.State.Running || !f) throw new ConflictError(`container ${rec.Id} is not running`);
    await f.reopen();
  }

  private imageRef(rec: ContainerRecord): string {
    const image = this.engine.imageStore.get(rec.Image);
    return image?.repoDigests[0] ?? rec.Image;
  }

  private containerMessage(rec: ContainerRecord, view: CriView) {
    return {
      id: rec.Id,
      pod_sandbox_id: view.sandboxId,
      metadata: view.metadata,
      image: { image: view.image || rec.Config.Image },
      image_ref: this.imageRef(rec),
      image_id: rec.Image,
      state: containerState(rec),
      created_at: nanosOf(rec.Created),
      labels: view.labels,
      annotations: view.annotations,
    };
  }

  listContainers(filter: { id?: string; state?: { state: string } | null; pod_sandbox_id?: string; label_selector?: Labels } | undefined) {
    return this.all('container')
      .filter(({ rec, view }) => {
        if (filter?.id && !rec.Id.startsWith(filter.id)) return false;
        if (filter?.pod_sandbox_id && !view.sandboxId.startsWith(filter.pod_sandbox_id)) return false;
        if (filter?.state && containerState(rec) !== filter.state.state) return false;
        return matchesSelector(view.labels, filter?.label_selector);
      })
      .map(({ rec, view }) => this.containerMessage(rec, view));
  }

  containerStatus(id: string | undefined, verbose: boolean) {
    const { rec, view } = this.get('container', id);
    const s = rec.State;
    const exited = s.Status === 'exited' || s.Status === 'dead';
    const reason = !exited ? '' : s.OOMKilled ? 'OOMKilled' : s.ExitCode === 0 ? 'Completed' : 'Error';
    const { labels: _l, annotations: _a, pod_sandbox_id: _p, ...base } = this.containerMessage(rec, view);
    const info: Record<string, string> = {};
    if (verbose) info.info = JSON.stringify({ pid: s.Pid, sandboxID: view.sandboxId, berthContainer: rec.Name.replace(/^\//, '') });
    return {
      status: {
        ...base,
        labels: view.labels,
        annotations: view.annotations,
        started_at: nanosOf(s.StartedAt),
        finished_at: exited ? nanosOf(s.FinishedAt) : '0',
        exit_code: exited ? s.ExitCode : 0,
        reason,
        message: s.Error ?? '',
        mounts: (rec.HostConfig.Binds ?? []).map((b) => {
          const [host_path, container_path, mode = ''] = b.split(':');
          const opts = mode.split(',');
          const propagation = Object.entries(PROPAGATION).find(([, docker]) => opts.includes(docker))?.[0] ?? 'PROPAGATION_PRIVATE';
          return { host_path, container_path, readonly: opts.includes('ro'), propagation };
        }),
        log_path: view.log,
      },
      info,
    };
  }

  async updateContainerResources(id: string | undefined, linux: Resources | undefined): Promise<void> {
    const { rec } = this.get('container', id);
    await this.engine.containers.update(rec.Id, resourcesOf(linux));
  }

  /** Run a command in the container and collect its output; `timeout` seconds (0: none). */
  async execSync(id: string | undefined, cmd: string[] | undefined, timeout: number) {
    const { rec } = this.get('container', id);
    if (!cmd?.length) throw new InvalidArgumentError('cmd: a command is required');
    const execId = this.engine.containers.execCreate(rec.Id, { Cmd: cmd, AttachStdout: true, AttachStderr: true });
    const out = { stdout: [] as Buffer[], stderr: [] as Buffer[], sizes: { stdout: 0, stderr: 0 } };
    let monitor: ReturnType<typeof connectUnix> | undefined;
    let drained!: Promise<void>;
    const started = await this.engine.containers.execStart(execId, (socket) => {
      monitor = connectUnix(socket);
      const decoder = new FrameDecoder(({ type, payload }) => {
        const stream = type === MonitorFrame.stdout ? 'stdout' : type === MonitorFrame.stderr ? 'stderr' : undefined;
        if (!stream || out.sizes[stream] >= EXEC_OUTPUT_CAP) return;
        const part = payload.subarray(0, EXEC_OUTPUT_CAP - out.sizes[stream]);
        out[stream].push(Buffer.from(part));
        out.sizes[stream] += part.length;
      });
      drained = new Promise((resolve) => {
        monitor!.on('data', (c: Buffer) => decoder.push(c));
        monitor!.on('close', () => resolve());
        monitor!.on('error', () => resolve());
      });
    });
    let timer: NodeJS.Timeout | undefined;
    const timedOut = timeout > 0
      ? new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), timeout * 1000)))
      : new Promise<never>(() => undefined);
    try {
      const result = await Promise.race([started.exited, timedOut]);
      if (result === 'timeout') {
        monitor?.write(signalFrame(9));
        await started.exited.catch(() => undefined);
        throw new TimeoutError(`command ${JSON.stringify(cmd.join(' '))} timed out after ${timeout}s`);
      }
      await drained;
      return { stdout: Buffer.concat(out.stdout), stderr: Buffer.concat(out.stderr), exit_code: result.exitCode };
    } finally {
      clearTimeout(timer);
      monitor?.destroy();
    }
  }

  // ---- streaming -------------------------------------------------------------------------

  private streamingServer(): StreamingServer {
    if (!this.streaming) throw new UnavailableError('the CRI streaming server is not running');
    return this.streaming;
  }

  exec(req: { container_id?: string; cmd?: string[]; tty?: boolean; stdin?: boolean; stdout?: boolean; stderr?: boolean }) {
    const { rec } = this.get('container', req.container_id);
    if (!rec.State.Running) throw new ConflictError(`container ${rec.Id} is not running`);
    if (!req.cmd?.length) throw new InvalidArgumentError('cmd: a command is required');
    if (!req.stdin && !req.stdout && !req.stderr) throw new InvalidArgumentError('one of stdin, stdout and stderr must be set');
    const cmd = req.cmd;
    const tty = !!req.tty;
    const url = this.streamingServer().command({
      kind: 'exec', stdin: !!req.stdin, stdout: !!req.stdout, stderr: !!req.stderr, tty,
      run: async (streams) => {
        const execId = this.engine.containers.execCreate(rec.Id, { Cmd: cmd, Tty: tty, AttachStdin: !!streams.stdin, AttachStdout: true, AttachStderr: true });
        let relayed: Promise<void> = Promise.resolve();
        const started = await this.engine.containers.execStart(execId, (socket) => {
          relayed = relay(connectUnix(socket), streams);
        });
        const { exitCode } = await started.exited;
        await relayed;
        return exitCode;
      },
    });
    return { url };
  }

  attach(req: { container_id?: string; stdin?: boolean; tty?: boolean; stdout?: boolean; stderr?: boolean }) {
    const { rec } = this.get('container', req.container_id);
    if (!rec.State.Running) throw new ConflictError(`container ${rec.Id} is not running`);
    if (req.stdin && !rec.Config.OpenStdin) throw new InvalidArgumentError(`container ${rec.Id} was created without stdin: it cannot be attached with stdin`);
    if (!!req.tty !== !!rec.Config.Tty) throw new InvalidArgumentError(`tty=${!!req.tty} does not match container ${rec.Id}, created with tty=${!!rec.Config.Tty}`);
    const url = this.streamingServer().command({
      kind: 'attach', stdin: !!req.stdin, stdout: !!req.stdout, stderr: !!req.stderr, tty: !!req.tty,
      run: async (streams) => {
        const monitor = this.engine.containers.connectAttach(rec.Id);
        if (!monitor) throw new ConflictError(`container ${rec.Id} is not running`);
        await monitorReady(monitor);
        // The client going away ends the attach, not the container.
        for (const s of [streams.stdin, streams.stdout, streams.stderr]) s?.on('close', () => monitor.destroy());
        await relay(monitor, streams);
        return 0;
      },
    });
    return { url };
  }

  /** Connections go to the pod's IP (or the host's loopback for host-network pods). */
  portForward(req: { pod_sandbox_id?: string }) {
    const { rec, view } = this.get('sandbox', req.pod_sandbox_id);
    if (!rec.State.Running) throw new ConflictError(`pod sandbox ${rec.Id} is not ready`);
    const url = this.streamingServer().portForward(async (port) => {
      const ip = view.namespaces.network === 'NODE' ? '127.0.0.1' : this.podIps(rec.Id)[0];
      if (!ip) throw new ConflictError(`pod sandbox ${rec.Id} has no IP address`);
      return dialTcp(ip, port);
    });
    return { url };
  }

  private podIps(id: string): string[] {
    const settings = this.engine.networks.settings(id) as { Networks: Record<string, { IPAddress?: string }> };
    return Object.values(settings.Networks ?? {}).map((n) => n.IPAddress).filter((ip): ip is string => !!ip);
  }

  // ---- stats -----------------------------------------------------------------------------

  /** CRI CpuUsage and MemoryUsage from berth's cgroup readings (Docker stats shape). */
  private async usage(rec: ContainerRecord): Promise<Usage> {
    const raw = (await this.engine.containers.rawStats(rec.Id).catch(() => ({}))) as {
      cpu_stats?: { cpu_usage?: { total_usage?: number } };
      memory_stats?: { usage?: number; limit?: number; stats?: Record<string, number> };
      pids_stats?: { current?: number };
    };
    const at = process.hrtime.bigint();
    const timestamp = String(BigInt(Date.now()) * 1_000_000n);
    const total = raw.cpu_stats?.cpu_usage?.total_usage ?? 0;
    const before = this.cpuSamples.get(rec.Id);
    this.cpuSamples.set(rec.Id, { at, usage: total });
    const elapsed = before ? Number(at - before.at) : 0;
    const nanoCores = before && elapsed > 0 ? Math.max(0, Math.round(((total - before.usage) * 1e9) / elapsed)) : 0;
    const mem = raw.memory_stats ?? {};
    const st = mem.stats ?? {};
    const usageBytes = mem.usage ?? 0;
    // Kubernetes' working set: usage less the inactive file cache (v2 name, then v1's).
    const workingSet = Math.max(0, usageBytes - (st.inactive_file ?? st.total_inactive_file ?? 0));
    const value = (n: number) => ({ value: String(n) });
    return {
      cpu: { timestamp, usage_core_nano_seconds: value(total), usage_nano_cores: value(nanoCores) },
      memory: {
        timestamp,
        working_set_bytes: value(workingSet),
        available_bytes: value(mem.limit ? Math.max(0, mem.limit - workingSet) : 0),
        usage_bytes: value(usageBytes),
        rss_bytes: value(st.anon ?? st.rss ?? 0),
        page_faults: value(st.pgfault ?? 0),
        major_page_faults: value(st.pgmajfault ?? 0),
      },
      processes: raw.pids_stats?.current ?? 0,
      timestamp,
    };
  }

  private async containerStatsOf(rec: ContainerRecord, view: CriView) {
    return this.containerStatsFrom(rec, view, await this.usage(rec));
  }

  /** No writable_layer: the storage drivers do not measure a container's upper layer yet. */
  private containerStatsFrom(rec: ContainerRecord, view: CriView, { cpu, memory }: Usage) {
    return { attributes: { id: rec.Id, metadata: view.metadata, labels: view.labels, annotations: view.annotations }, cpu, memory };
  }

  async containerStats(id: string | undefined) {
    const { rec, view } = this.get('container', id);
    return { stats: await this.containerStatsOf(rec, view) };
  }

  async listContainerStats(filter: { id?: string; pod_sandbox_id?: string; label_selector?: Labels } | undefined) {
    const hits = this.all('container').filter(({ rec, view }) => {
      if (filter?.id && !rec.Id.startsWith(filter.id)) return false;
      if (filter?.pod_sandbox_id && !view.sandboxId.startsWith(filter.pod_sandbox_id)) return false;
      return matchesSelector(view.labels, filter?.label_selector);
    });
    return { stats: await Promise.all(hits.map(({ rec, view }) => this.containerStatsOf(rec, view))) };
  }

  /** A pod's figures: the sum of its pause process's and its running containers'. */
  private async podStatsOf(rec: ContainerRecord, view: CriView) {
    const members = this.all('container').filter((c) => c.view.sandboxId === rec.Id && c.rec.State.Running);
    const own = await Promise.all(members.map((c) => this.usage(c.rec)));
    const containers = members.map((c, i) => this.containerStatsFrom(c.rec, c.view, own[i]));
    const pause = await this.usage(rec);
    const sum = (pick: (u: Usage) => { value: string }) => ({ value: String([pause, ...own].reduce((n, u) => n + Number(pick(u).value), 0)) });
    return {
      attributes: { id: rec.Id, metadata: view.metadata, labels: view.labels, annotations: view.annotations },
      linux: {
        cpu: { timestamp: pause.timestamp, usage_core_nano_seconds: sum((u) => u.cpu.usage_core_nano_seconds), usage_nano_cores: sum((u) => u.cpu.usage_nano_cores) },
        memory: {
          timestamp: pause.timestamp,
          working_set_bytes: sum((u) => u.memory.working_set_bytes),
          available_bytes: { value: '0' },
          usage_bytes: sum((u) => u.memory.usage_bytes),
          rss_bytes: sum((u) => u.memory.rss_bytes),
          page_faults: sum((u) => u.memory.page_faults),
          major_page_faults: sum((u) => u.memory.major_page_faults),
        },
        process: { timestamp: pause.timestamp, process_count: { value: String([pause, ...own].reduce((n, u) => n + u.processes, 0)) } },
        containers,
      },
    };
  }

  async podSandboxStats(id: string | undefined) {
    const { rec, view } = this.get('sandbox', id);
    return { stats: await this.podStatsOf(rec, view) };
  }

  async listPodSandboxStats(filter: { id?: string; label_selector?: Labels } | undefined) {
    const hits = this.all('sandbox').filter(({ rec, view }) => (!filter?.id || rec.Id.startsWith(filter.id)) && matchesSelector(view.labels, filter?.label_selector));
    return { stats: await Promise.all(hits.map(({ rec, view }) => this.podStatsOf(rec, view))) };
  }

  version(apiVersion: string) {
    return { version: '0.1.0', runtime_name: 'berth', runtime_version: ENGINE_VERSION, runtime_api_version: apiVersion };
  }

  status(verbose: boolean) {
    const runtimeReady = !!this.engine.plugins.getSingle('runtime') && !!this.engine.storage();
    const networkReady = !!this.engine.plugins.get('isolator.network');
    const condition = (type: string, ok: boolean, why: string) => ({ type, status: ok, reason: ok ? '' : why, message: ok ? '' : why });
    return {
      status: {
        conditions: [
          condition('RuntimeReady', runtimeReady, `no runtime or storage driver: ${this.engine.plugins.whyMissing(runtimeReady ? 'network' : 'runtime')}`),
          condition('NetworkReady', networkReady, 'isolator.network (CNI) is not loaded'),
        ],
      },
      info: verbose ? { config: JSON.stringify({ root: this.engine.config.root, cri: this.engine.config.cri }) } : {},
    };
  }
}
