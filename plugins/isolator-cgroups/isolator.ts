/**
 * `isolator.cgroups`: one cgroup per container in every hierarchy (v1, v2 or both: hybrid), Docker's
 * resource limits, the device allow list (v1 devices controller, or a BPF device program on v2),
 * OOM detection, stats, pause/resume, live updates.
 *
 * Container cgroups live below berthd's own cgroup in each hierarchy (`<own>/berth/<id>`) unless
 * config names another parent; berth never moves a process other than the container's own.
 */
import { join, posix } from 'node:path';
import { readFileSync, writeFileSync, rmSync } from 'node:fs';
import { InvalidArgumentError, bpf as hostBpf, type IsolationTarget, type Isolator, type LaunchPlan, type Bpf } from '../../core/plugin';
import { type CgroupDir, type CgroupFs, dirWith, nodeCgroupFs, readKeyed, readPids, readTrimmed, writeControl } from './cgfs';
import { applyDevicesV1, devicePolicy, deviceProgram, updateDevicesV1 } from './devices';
import { freeze, isFrozen, thaw } from './freezer';
import { type CgroupLayout, type CgroupVersion, cgroupSubParent, controllerNames, detectLayout, type Hierarchy, type HierarchyChoice } from './layout';
import { neededControllers, parseResources, RESOURCE_FLAGS, type Resources } from './resources';
import { readStats } from './stats';
import { applyBlkioV1, applyCpusetV1, applyCpuV1, applyMemoryV1, applyPids, grantRtRuntimeV1, inheritCpusetV1 } from './v1';
import { applyCpusetV2, applyCpuV2, applyIoV2, applyMemoryV2, enableSubtreeControllers } from './v2';

export interface CgroupsConfig {
  /**
   * Where container cgroups go in each hierarchy. Relative (default `berth`): below berthd's own
   * cgroup. Absolute (`/berth`): that cgroup path from each hierarchy's root.
   */
  parent: string;
  /**
   * Which hierarchies to use (default `auto`: every one mounted). `v2` uses only the unified one,
   * also on a hybrid host: devices are then filtered by a BPF program, as on a v2-only host.
   */
  hierarchy?: HierarchyChoice;
  /**
   * Real-time CPU time (µs per period) given to berth's parent cgroups on cgroup v1, so that
   * containers can ask for some with --cpu-rt-runtime (dockerd's --cpu-rt-runtime). 0: none.
   */
  cpuRtRuntime?: number;
}

export interface CgroupsInfo {
  version: CgroupVersion;
  driver: 'cgroupfs';
  controllers: string[];
}

/** Where the dirs a container got are remembered, so a restarted berthd finds them again. */
export const STATE_FILE = 'cgroups.json';

const CONTAINER_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The update body's fields that change which devices the container may use. */
const DEVICE_KEYS = ['Devices', 'DeviceCgroupRules'];

/** Which controllers may stand for one another: blkio on v1 is io on v2. */
const ALIASES: Record<string, string[]> = { blkio: ['blkio', 'io'], cpuacct: ['cpuacct', 'cpu'] };

export class CgroupsIsolator implements Isolator {
  readonly name = 'cgroups';
  /** containerId -> its cgroup dirs, for the phases after setup. */
  private readonly known = new Map<string, CgroupDir[]>();
  /** Why v2 controllers could not be enabled below berth's parent cgroup, if they could not. */
  private enableError?: string;

  constructor(
    private readonly config: CgroupsConfig,
    readonly layout: CgroupLayout = detectLayout(undefined, config.parent.startsWith('/'), config.hierarchy),
    private readonly fs: CgroupFs = nodeCgroupFs,
    private readonly bpf: Bpf = hostBpf,
  ) {
    if (!config.parent || config.parent.split('/').some((p) => p === '..')) throw new InvalidArgumentError(`isolator.cgroups: bad parent ${JSON.stringify(config.parent)}`);
  }

  /** For `berth info` (CgroupVersion, CgroupDriver). */
  info(): { cgroups: CgroupsInfo } {
    return { cgroups: { version: this.layout.version, driver: 'cgroupfs', controllers: controllerNames(this.layout) } };
  }

  /** Where containers' cgroups are put in hierarchy `h`. */
  parentDir(h: Hierarchy): string {
    return join(this.topDir(h), this.config.parent);
  }

  /** Where berth's parent path starts: the hierarchy's root (absolute parent) or berthd's own cgroup. */
  private topDir(h: Hierarchy): string {
    return this.config.parent.startsWith('/') ? h.mountPoint : h.ownDir;
  }

  /** The dirs a container gets (or got): one per hierarchy. */
  dirsFor(target: IsolationTarget): CgroupDir[] {
    const cached = this.known.get(target.containerId);
    if (cached) return cached;
    try {
      const saved = JSON.parse(readFileSync(join(target.stateDir, STATE_FILE), 'utf8')) as CgroupDir[];
      if (Array.isArray(saved) && saved.every((d) => typeof d?.dir === 'string')) return saved;
    } catch {
      // not set up, or set up before this file existed: compute
    }
    return this.computeDirs(target.containerId, cgroupSubParent(target.hostConfig));
  }

  private computeDirs(containerId: string, sub: string[]): CgroupDir[] {
    if (!CONTAINER_ID.test(containerId)) throw new InvalidArgumentError(`cgroups: container id ${JSON.stringify(containerId)} cannot name a cgroup`);
    return this.layout.hierarchies.map((h) => ({ kind: h.kind, dir: join(this.parentDir(h), ...sub, containerId), controllers: [...h.controllers] }));
  }

  /** Refuse limits whose controller this host lacks, naming the flag and the controller. */
  private checkControllers(r: Resources): void {
    for (const { controller, key } of neededControllers(r)) {
      const names = ALIASES[controller] ?? [controller];
      if (names.some((c) => this.layout.byController.has(c))) continue;
      throw new InvalidArgumentError(`${RESOURCE_FLAGS[key]} needs the ${controller} cgroup controller, which this host does not have (HostConfig.${key})`);
    }
  }

  /**
   * Where the device list goes: the v1 devices cgroup, else (v2 has no devices controller) a BPF
   * program on the v2 cgroup.
   */
  private deviceTarget(dirs: CgroupDir[]): { kind: 'v1' | 'bpf'; dir: string } | undefined {
    const v1 = dirWith(dirs, 'devices');
    if (v1) return { kind: 'v1', dir: v1.dir };
    const v2 = dirs.find((d) => d.kind === 'v2');
    return v2 && { kind: 'bpf', dir: v2.dir };
  }

  async setup(target: IsolationTarget): Promise<void> {
    const r = parseResources(target.hostConfig, 'create');
    this.checkControllers(r);
    const devices = devicePolicy(target.hostConfig);
    const sub = cgroupSubParent(target.hostConfig);
    const dirs = this.computeDirs(target.containerId, sub);
    const created: string[] = [];
    try {
      for (const [i, h] of this.layout.hierarchies.entries()) {
        const d = dirs[i];
        if (this.makeWithParents(h, sub, d.dir)) created.push(d.dir);
        if (h.kind === 'v2') {
          // What is actually usable in the new cgroup (the parent may not have offered everything).
          d.controllers = (readTrimmed(this.fs, `${d.dir}/cgroup.controllers`) ?? '').split(/\s+/).filter((c) => h.controllers.includes(c));
        } else if (h.controllers.includes('cpuset')) inheritCpusetV1(this.fs, d.dir, posix.dirname(d.dir));
      }
      // Now that we know what the v2 dir really offers, a needed controller may still be missing.
      for (const { controller, key } of neededControllers(r)) {
        const names = ALIASES[controller] ?? [controller];
        if (!names.some((c) => dirWith(dirs, c))) {
          throw new InvalidArgumentError(
            `${RESOURCE_FLAGS[key]} needs the ${controller} cgroup controller, which is not enabled for berth's cgroups (HostConfig.${key})${this.enableError ? `: ${this.enableError}` : ''}`,
          );
        }
      }
      this.apply(dirs, r);
      // Before the process joins (attach), so it never runs with the host's devices open to it.
      const devTarget = this.deviceTarget(dirs);
      if (devTarget?.kind === 'v1') applyDevicesV1(this.fs, devTarget.dir, devices);
      else if (devTarget) this.bpf.setDeviceProgram(devTarget.dir, deviceProgram(devices));
      writeFileSync(join(target.stateDir, STATE_FILE), JSON.stringify(dirs), { mode: 0o600 });
    } catch (err) {
      // The manager cleans up only isolators whose setup succeeded: undo our part here.
      for (const dir of created.reverse()) {
        try {
          this.fs.rmdir(dir);
        } catch {
          // best effort; the error that matters is `err`
        }
      }
      throw err;
    }
    this.known.set(target.containerId, dirs);
  }

  /**
   * The parent chain, then the container's cgroup. Another berthd sharing the parent removes it
   * at its shutdown when it is empty (close below), possibly between the two steps: then both
   * are done again.
   */
  private makeWithParents(h: Hierarchy, sub: string[], dir: string): boolean {
    const make = () => {
      let parent = this.makeParents(h);
      for (const part of sub) parent = this.makeLevel(h, parent, join(parent, part));
      return this.fs.mkdir(dir);
    };
    try {
      return make();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      return make();
    }
  }

  /** At daemon shutdown: remove the parent cgroups (`<own>/berth`) where they are empty again. */
  close(): void {
    for (const h of this.layout.hierarchies) {
      const parts = this.config.parent.split('/').filter(Boolean);
      const top = this.topDir(h);
      for (let n = parts.length; n > 0; n--) {
        try {
          this.fs.rmdir(join(top, ...parts.slice(0, n)));
        } catch {
          break; // still holds containers (running ones outlive berthd) or another daemon's
        }
      }
    }
  }

  /** Create the parent chain (e.g. `<own>/berth`), with cpuset and v2 controllers passed down; returns its last dir. */
  private makeParents(h: Hierarchy): string {
    const top = this.topDir(h);
    let dir = top;
    try {
      // Without v2 controllers a container still gets a cgroup (pids, freezing, cleanup): a
      // failure here matters only when a limit needs one, and then its message says why.
      if (h.kind === 'v2' && h.controllers.length) enableSubtreeControllers(this.fs, top, h.controllers);
    } catch (err) {
      this.enableError = (err as Error).message;
    }
    for (const part of this.config.parent.split('/').filter(Boolean)) dir = this.makeLevel(h, dir, join(dir, part));
    return dir;
  }

  /** One cgroup of a parent chain: made if missing, with cpuset and v2 controllers passed down. */
  private makeLevel(h: Hierarchy, parent: string, dir: string): string {
    this.fs.mkdir(dir);
    if (h.kind === 'v1' && h.controllers.includes('cpuset')) inheritCpusetV1(this.fs, dir, parent);
    if (h.kind === 'v2' && h.controllers.length) {
      try {
        enableSubtreeControllers(this.fs, dir, h.controllers);
      } catch (err) {
        this.enableError = (err as Error).message;
      }
    }
    return dir;
  }

  /** Write the limits into each controller's directory, with its version's files. */
  private apply(dirs: CgroupDir[], r: Resources): void {
    const mem = dirWith(dirs, 'memory');
    if (mem) (mem.kind === 'v1' ? applyMemoryV1 : applyMemoryV2)(this.fs, mem.dir, r);
    const cpu = dirWith(dirs, 'cpu');
    if (cpu?.kind === 'v1' && r.cpuRtRuntime && this.config.cpuRtRuntime) grantRtRuntimeV1(this.fs, this.topDir(this.layout.byController.get('cpu')!), cpu.dir, this.config.cpuRtRuntime);
    if (cpu) (cpu.kind === 'v1' ? applyCpuV1 : applyCpuV2)(this.fs, cpu.dir, r);
    const cpuset = dirWith(dirs, 'cpuset');
    if (cpuset) (cpuset.kind === 'v1' ? applyCpusetV1 : applyCpusetV2)(this.fs, cpuset.dir, posix.dirname(cpuset.dir), r);
    const pids = dirWith(dirs, 'pids');
    if (pids) applyPids(this.fs, pids.dir, r);
    const blkio = dirWith(dirs, 'blkio');
    const io = dirWith(dirs, 'io');
    if (blkio) applyBlkioV1(this.fs, blkio.dir, r);
    else if (io) applyIoV2(this.fs, io.dir, r);
  }

  plan(target: IsolationTarget, plan: LaunchPlan): void {
    const dirs = this.dirsFor(target);
    plan.cgroupPaths = [...new Set([...(plan.cgroupPaths ?? []), ...dirs.map((d) => d.dir)])];
    const mem = dirWith(dirs, 'memory');
    if (mem) plan.oomCgroup = mem.dir;
  }

  /**
   * The child waits before exec: put it into every one of its cgroups (the launcher does not),
   * then check it is there, so nothing it forks can escape a limit.
   */
  async attach(target: IsolationTarget, pid: number): Promise<void> {
    const dirs = this.dirsFor(target);
    for (const d of dirs) writeControl(this.fs, `${d.dir}/cgroup.procs`, pid);
    for (const d of dirs) {
      if (!readPids(this.fs, d.dir).includes(pid)) throw new Error(`cgroups: pid ${pid} did not land in ${d.dir}`);
    }
  }

  async stats(target: IsolationTarget): Promise<Record<string, unknown>> {
    return readStats(this.fs, this.dirsFor(target));
  }

  /** Freeze the container (v1 freezer or v2 cgroup.freeze); resolves once it is frozen. */
  async pause(target: IsolationTarget): Promise<void> {
    await freeze(this.fs, this.dirsFor(target));
  }

  async resume(target: IsolationTarget): Promise<void> {
    thaw(this.fs, this.dirsFor(target));
  }

  paused(target: IsolationTarget): boolean {
    return isFrozen(this.fs, this.dirsFor(target));
  }

  /** Host pids of every process in the container (for `berth top`). */
  pids(target: IsolationTarget): number[] {
    const dirs = this.dirsFor(target);
    const d = dirWith(dirs, 'pids') ?? dirWith(dirs, 'memory') ?? dirs[0];
    return d ? readPids(this.fs, d.dir) : [];
  }

  /**
   * Change limits of a running container, Docker's `update` body: Memory, MemorySwap,
   * MemoryReservation, NanoCpus, CpuShares, CpuQuota, CpuPeriod, CpusetCpus, CpusetMems,
   * PidsLimit, BlkioWeight. Only fields present change; Memory/PidsLimit 0 lift the limit.
   */
  async update(target: IsolationTarget, resources: Record<string, unknown>): Promise<void> {
    const r = parseResources(resources, 'update');
    this.checkControllers(r);
    const dirs = this.dirsFor(target);
    const devTarget = DEVICE_KEYS.some((k) => k in resources) ? this.deviceTarget(dirs) : undefined;
    // Worked out before anything changes: a bad rule leaves limits and devices as they were.
    const devices = devTarget && devicePolicy({ ...target.hostConfig, ...resources });
    const before = devTarget?.kind === 'v1' ? devicePolicy(target.hostConfig) : undefined;
    this.apply(dirs, r);
    if (!devTarget || !devices) return;
    if (before) updateDevicesV1(this.fs, devTarget.dir, before, devices);
    else this.bpf.setDeviceProgram(devTarget.dir, deviceProgram(devices));
  }

  /** Did the kernel's OOM killer kill a process of this container (since its cgroup was made)? */
  oomKilled(target: IsolationTarget): boolean {
    const mem = dirWith(this.dirsFor(target), 'memory');
    if (!mem) return false;
    const counts = readKeyed(this.fs, `${mem.dir}/${mem.kind === 'v1' ? 'memory.oom_control' : 'memory.events'}`);
    return (counts.oom_kill ?? 0) > 0;
  }

  /**
   * Remove the container's cgroups everywhere. Processes still inside are the container's: thaw,
   * kill them (cgroup.kill where the kernel has it, else by pid from cgroup.procs), retry briefly.
   * A BPF device program goes with its cgroup (the kernel detaches it at rmdir; berth holds no fd
   * of it): detaching it earlier would leave a surviving process without a device filter.
   */
  async cleanup(target: IsolationTarget): Promise<void> {
    const dirs = this.dirsFor(target);
    if (dirs.some((d) => this.fs.exists(d.dir)) && isFrozen(this.fs, dirs)) thaw(this.fs, dirs);
    const deadline = Date.now() + 3000;
    let pending = dirs.filter((d) => this.fs.exists(d.dir));
    for (let attempt = 0; pending.length; attempt++) {
      const failed: { d: CgroupDir; err: unknown }[] = [];
      for (const d of pending) {
        try {
          this.fs.rmdir(d.dir);
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          if (code === 'ENOENT') continue;
          if (code !== 'EBUSY') throw err;
          failed.push({ d, err });
          this.killAll(d);
        }
      }
      pending = failed.map((f) => f.d);
      if (!pending.length) break;
      if (Date.now() > deadline) {
        throw new Error(`cgroups: cannot remove ${pending.map((d) => d.dir).join(', ')}: processes ${pending.flatMap((d) => readPids(this.fs, d.dir)).join(' ') || '(none listed)'} remain`);
      }
      await sleep(Math.min(5 * 2 ** attempt, 100));
    }
    this.removeEmptySubParents(dirs);
    this.known.delete(target.containerId);
    rmSync(join(target.stateDir, STATE_FILE), { force: true });
  }

  /** The CgroupParent chain between berth's parent and a removed container's cgroup, where no other container is left in it. */
  private removeEmptySubParents(dirs: CgroupDir[]): void {
    for (const [i, h] of this.layout.hierarchies.entries()) {
      const top = this.parentDir(h);
      if (!dirs[i]) continue;
      for (let dir = posix.dirname(dirs[i].dir); dir.startsWith(top + '/'); dir = posix.dirname(dir)) {
        try {
          this.fs.rmdir(dir);
        } catch {
          break; // another container of the pod, or not there
        }
      }
    }
  }

  private killAll(d: CgroupDir): void {
    if (d.kind === 'v2' && this.fs.exists(`${d.dir}/cgroup.kill`)) {
      try {
        this.fs.write(`${d.dir}/cgroup.kill`, '1');
        return;
      } catch {
        // fall back to killing by pid
      }
    }
    for (const pid of readPids(this.fs, d.dir)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
}
