/**
 * The pod's containers: berth containers that share the sandbox's namespaces through the
 * `container:<sandbox id>` modes of isolator.namespaces. Each has a pid namespace of its own (the
 * v1 PodSpec default) unless namespace_options.pid is POD (the sandbox's, with pause as init) or
 * NODE (the host's). Their logs are converted to the CRI format while they run (core/cri/logs.ts).
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { ConflictError, InvalidArgumentError, NotFoundError } from '../contracts/errors';
import type { ContainerRecord } from '../containers/record';
import type { Engine } from '../kernel/engine';
import { findImage } from './images';
import { CRI_LABEL, type CriView, criLabels, matchesSelector, nanosOf } from './labels';
import { CriLogFollower } from './logs';
import type { CriObjects } from './objects';
import type { CriStats } from './stats';
import type { ContainerConfig, Labels, Resources, SandboxConfig, SecurityContext } from './types';

/**
 * CRI mount propagation as Docker bind modes (what containerd gives runc): BIDIRECTIONAL is an
 * rshared bind, a peer of the host mount's group (the launcher refuses it when the host path is
 * not on a shared mount, and in a user namespace).
 */
const PROPAGATION: Record<string, string> = { PROPAGATION_PRIVATE: 'rprivate', PROPAGATION_HOST_TO_CONTAINER: 'rslave', PROPAGATION_BIDIRECTIONAL: 'rshared' };

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

export class CriContainers {
  private readonly followers = new Map<string, CriLogFollower>();

  constructor(
    private readonly engine: Engine,
    private readonly objects: CriObjects,
    private readonly stats: CriStats,
  ) {
    // A container's exit is when its log is complete: convert the rest and stop following.
    engine.containers.on('exit', (id: string) => void this.stopFollowing(id));
  }

  /** After a berthd restart: follow the logs of CRI containers that still run. */
  async recover(): Promise<void> {
    for (const { rec, view } of this.objects.all('container')) if (view.log && rec.State.Running) await this.follow(rec, view);
  }

  async close(): Promise<void> {
    for (const f of this.followers.values()) await f.stop();
    this.followers.clear();
  }

  async createContainer(sandboxId: string | undefined, config: ContainerConfig | undefined, sandboxConfig: SandboxConfig | undefined): Promise<string> {
    const sandbox = this.objects.get('sandbox', sandboxId);
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
      if (!m.host_path?.startsWith('/') || !m.container_path?.startsWith('/'))
        throw new InvalidArgumentError(`mounts: host_path and container_path must be absolute (got ${JSON.stringify(m.host_path)} -> ${JSON.stringify(m.container_path)})`);
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
          CgroupParent: sandbox.rec.HostConfig.CgroupParent ?? '',
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
    const { rec, view } = this.objects.get('container', id);
    const sandbox = this.objects.find('sandbox', view.sandboxId);
    if (!sandbox?.rec.State.Running) throw new ConflictError(`pod sandbox ${view.sandboxId} of container ${rec.Id} is not ready`);
    // Following before the start: the converter reads the json-file log from its first line.
    if (view.log) await this.follow(rec, view);
    await this.engine.containers.start(rec.Id);
  }

  private async follow(rec: ContainerRecord, view: CriView): Promise<void> {
    await this.followers.get(rec.Id)?.stop();
    const follower = new CriLogFollower(this.engine.containers.logPath(rec.Id), view.log, path.join(this.objects.stateDir(rec.Id), 'cri-log.offset'));
    this.followers.set(rec.Id, follower);
    await follower.start();
  }

  private async stopFollowing(id: string): Promise<void> {
    const f = this.followers.get(id);
    this.followers.delete(id);
    await f?.stop();
  }

  async stopContainer(id: string | undefined, timeout: number): Promise<void> {
    const { rec } = this.objects.get('container', id);
    await this.engine.containers.stop(rec.Id, Math.max(0, timeout));
  }

  async removeContainer(id: string | undefined): Promise<void> {
    const hit = this.objects.find('container', id);
    if (!hit) return;
    await this.engine.containers.remove(hit.rec.Id, { force: true });
    this.stats.forget(hit.rec.Id);
    await this.stopFollowing(hit.rec.Id);
  }

  async reopenContainerLog(id: string | undefined): Promise<void> {
    const { rec } = this.objects.get('container', id);
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
    return this.objects
      .all('container')
      .filter(({ rec, view }) => {
        if (filter?.id && !rec.Id.startsWith(filter.id)) return false;
        if (filter?.pod_sandbox_id && !view.sandboxId.startsWith(filter.pod_sandbox_id)) return false;
        if (filter?.state && containerState(rec) !== filter.state.state) return false;
        return matchesSelector(view.labels, filter?.label_selector);
      })
      .map(({ rec, view }) => this.containerMessage(rec, view));
  }

  containerStatus(id: string | undefined, verbose: boolean) {
    const { rec, view } = this.objects.get('container', id);
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
    const { rec } = this.objects.get('container', id);
    await this.engine.containers.update(rec.Id, resourcesOf(linux));
  }
}
