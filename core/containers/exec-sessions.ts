/**
 * Exec sessions: a new process in a running container's namespaces and cgroups. The launcher
 * joins the namespaces (setns: user first, mount last — Node cannot), with the container's
 * capabilities and environment. Sessions live in memory (Docker keeps them until the container
 * goes); each run has a short state dir under `<root>/exec/` so its attach socket path fits.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ConflictError, InvalidArgumentError, NotFoundError } from '../contracts/errors';
import type { LaunchPlan } from '../contracts/launch';
import type { ExitStatus, Runtime } from '../contracts/runtime';
import type { StorageDriver } from '../contracts/storage';
import { CAPABILITIES } from '../launcher/caps';
import { mergeEnv } from './env';
import type { ContainerRecord } from './record';
import { resolveUser } from './user';

export interface ExecConfig {
  AttachStdin?: boolean;
  AttachStdout?: boolean;
  AttachStderr?: boolean;
  Tty?: boolean;
  Cmd: string[];
  Env?: string[] | null;
  WorkingDir?: string;
  User?: string;
  Privileged?: boolean;
  DetachKeys?: string;
}

export interface ExecSession {
  ID: string;
  ContainerID: string;
  Config: ExecConfig;
  Running: boolean;
  ExitCode: number | null;
  Pid: number;
  stateDir: string;
}

/** /proc/PID/ns names of the namespaces a plan creates. */
const NS_FILE: Record<string, string> = { pid: 'pid', mount: 'mnt', uts: 'uts', ipc: 'ipc', net: 'net', cgroup: 'cgroup', user: 'user' };

export class ExecSessions {
  private readonly sessions = new Map<string, ExecSession>();
  private readonly dir: string;

  constructor(root: string) {
    this.dir = path.join(root, 'exec');
  }

  create(container: ContainerRecord, config: ExecConfig): string {
    if (!container.State.Running) throw new ConflictError(`Container ${container.Id} is not running`);
    if (container.State.Paused) throw new ConflictError(`Container ${container.Id} is paused, unpause the container before exec`);
    if (!Array.isArray(config?.Cmd) || !config.Cmd.length) throw new InvalidArgumentError('No exec command specified');
    const id = randomBytes(32).toString('hex');
    this.sessions.set(id, { ID: id, ContainerID: container.Id, Config: config, Running: false, ExitCode: null, Pid: 0, stateDir: path.join(this.dir, id.slice(0, 16)) });
    return id;
  }

  get(id: string): ExecSession {
    const s = this.sessions.get(id);
    if (!s) throw new NotFoundError(`No such exec instance: ${id}`);
    return s;
  }

  /** Forget one finished session (health probes, which nobody inspects afterwards). */
  forget(id: string): void {
    this.sessions.delete(id);
  }

  /** Forget a removed container's sessions. */
  dropContainer(containerId: string): void {
    for (const [id, s] of this.sessions) if (s.ContainerID === containerId) this.sessions.delete(id);
  }

  /**
   * Start the session's process. `beforeExec` gets the attach socket while the process waits,
   * so an attached client sees every byte. Resolves once it runs; `exited` settles at its end.
   */
  async start(
    session: ExecSession,
    container: ContainerRecord,
    containerPlan: LaunchPlan,
    deps: { runtime: Runtime; storage: StorageDriver; attach: (pid: number) => Promise<void> },
    beforeExec?: (socketPath: string) => void,
  ): Promise<{ exited: Promise<ExitStatus> }> {
    if (session.Running || session.ExitCode !== null) throw new ConflictError(`exec ${session.ID} has already been started`);
    if (!container.State.Running) throw new ConflictError(`Container ${container.Id} is not running`);
    const pid = container.State.Pid;
    const cfg = session.Config;
    const rootfs = await deps.storage.mount(container.Id);
    let user;
    try {
      user = await resolveUser(rootfs, cfg.User || container.Config.User, (container.HostConfig.GroupAdd as string[] | null) ?? []);
    } finally {
      await deps.storage.unmount(container.Id);
    }
    // Namespaces shared with another container (a pod's net, ipc, uts) are the process's own too.
    const types = [...containerPlan.namespaces, ...Object.keys(containerPlan.enterNamespaces ?? {})];
    const joinNamespaces = Object.fromEntries(types.filter((n) => NS_FILE[n]).map((n) => [NS_FILE[n], `/proc/${pid}/ns/${NS_FILE[n]}`]));
    const plan: LaunchPlan = {
      ...containerPlan,
      namespaces: [],
      joinNamespaces,
      enterNamespaces: undefined,
      uidMappings: undefined,
      gidMappings: undefined,
      rootfs: '',
      mounts: [],
      devices: [],
      symlinks: [],
      maskedPaths: [],
      readonlyPaths: [],
      hostname: undefined,
      loopbackUp: false,
      oomCgroup: undefined,
      logPath: '/dev/null',
      logRotation: undefined,
      // Privileged exec keeps every capability, as `docker exec --privileged` does.
      capabilities: cfg.Privileged ? [...CAPABILITIES] : containerPlan.capabilities,
      process: {
        args: cfg.Cmd,
        env: mergeEnv(containerPlan.process.env, cfg.Env ?? []),
        cwd: cfg.WorkingDir || containerPlan.process.cwd,
        uid: user.uid,
        gid: user.gid,
        additionalGids: user.additionalGids,
        terminal: !!cfg.Tty,
        openStdin: !!cfg.AttachStdin,
        stdinOnce: !!cfg.AttachStdin,
      },
    };
    await fs.promises.mkdir(session.stateDir, { recursive: true, mode: 0o700 });
    const name = `exec-${session.ID.slice(0, 12)}`;
    const proc = await deps.runtime.start(name, session.stateDir, plan, {
      attach: async (pid) => {
        await deps.attach(pid);
        const socket = deps.runtime.attachSocket?.(name, session.stateDir);
        if (socket && beforeExec) beforeExec(socket);
      },
    });
    session.Running = true;
    session.Pid = proc.pid;
    const exited = deps.runtime.wait(name, session.stateDir).then(async (exit) => {
      session.Running = false;
      // A process that never ran (no such executable, not executable) is 126, as dockerd's exec says.
      session.ExitCode = exit.error ? 126 : exit.exitCode;
      await deps.runtime.delete(name, session.stateDir).catch(() => undefined);
      await fs.promises.rm(session.stateDir, { recursive: true, force: true });
      return exit;
    });
    return { exited };
  }

  inspect(id: string) {
    const s = this.get(id);
    return {
      ID: s.ID,
      Running: s.Running,
      ExitCode: s.ExitCode,
      ProcessConfig: { tty: !!s.Config.Tty, entrypoint: s.Config.Cmd[0], arguments: s.Config.Cmd.slice(1), privileged: !!s.Config.Privileged, user: s.Config.User ?? '' },
      OpenStdin: !!s.Config.AttachStdin,
      OpenStderr: !!s.Config.AttachStderr,
      OpenStdout: !!s.Config.AttachStdout,
      CanRemove: false,
      ContainerID: s.ContainerID,
      DetachKeys: s.Config.DetachKeys ?? '',
      Pid: s.Pid,
    };
  }
}
