/**
 * A small harness that runs containers in a busybox rootfs (busybox-rootfs.ts) through the real
 * runtime.native plugin and isolator.namespaces plugin (no daemon).
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { IsolationTarget, Isolator } from '../../core/contracts/isolator';
import type { LaunchPlan, ProcessSpec } from '../../core/contracts/launch';
import type { PluginContext, PluginManifest } from '../../core/contracts/plugin';
import type { ExitStatus, Runtime, RuntimeProcess } from '../../core/contracts/runtime';
import type { Logger } from '../../core/contracts/types';
import { IsolatorChain } from '../../core/containers/isolator-chain';
import { newLaunchPlan } from '../../core/launcher/plan';
import namespacesPlugin from '../../plugins/isolator-namespaces/index';
import nativePlugin from '../../plugins/runtime-native/index';
import { buildBusyboxRootfs } from './busybox-rootfs';

const quietLog: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  child() {
    return quietLog;
  },
};

/** A plugin initialised the way the kernel does it, with a quiet log and no other plugins. */
export async function initPlugin<C, I>(manifest: PluginManifest<C, I>, root: string, config: Record<string, unknown> = {}): Promise<I> {
  const raw = { ...(manifest.defaults ?? {}), ...config } as Record<string, unknown>;
  const ctx: PluginContext<C> = {
    uri: `${manifest.type}.${manifest.id}`,
    config: manifest.parseConfig ? manifest.parseConfig(raw) : (raw as C),
    root,
    stateDir: join(root, 'plugins', `${manifest.type}.${manifest.id}`),
    container: undefined as never,
    log: quietLog,
    getSingle: () => undefined,
    getAll: () => [],
  };
  return manifest.init(ctx);
}

export interface RunOptions {
  hostConfig?: Record<string, unknown>;
  process?: Partial<ProcessSpec>;
  /** Called with the started process before waiting (e.g. to attach). */
  afterStart?: (proc: RuntimeProcess, stateDir: string, id: string) => Promise<void> | void;
}

export interface RunResult {
  id: string;
  stateDir: string;
  exit: ExitStatus;
  /** The json-file log, parsed. */
  log: { log: string; stream: string; time: string }[];
  stdout: string;
  stderr: string;
}

/** A temp dir with a busybox rootfs plus the two plugins, for running real containers. */
export class ContainerHarness {
  readonly base = mkdtempSync('/tmp/berth-rt-');
  readonly rootfs = buildBusyboxRootfs(join(this.base, 'rootfs'));
  runtime!: Runtime;
  isolator!: Isolator;

  async init(namespacesConfig: Record<string, unknown> = {}): Promise<this> {
    this.runtime = await initPlugin(nativePlugin, this.base);
    this.isolator = await initPlugin(namespacesPlugin, this.base, namespacesConfig);
    return this;
  }

  basePlan(args: string[], process: Partial<ProcessSpec> = {}): LaunchPlan {
    return newLaunchPlan(this.rootfs, {
      args,
      env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'HOME=/root'],
      cwd: '/',
      uid: 0,
      gid: 0,
      additionalGids: [],
      terminal: false,
      ...process,
    });
  }

  /** Setup + plan phases, then start through the runtime with the isolator's attach as hook (berthd's chain). */
  async start(args: string[], opts: RunOptions = {}): Promise<{ id: string; stateDir: string; proc: RuntimeProcess; target: IsolationTarget }> {
    const id = randomBytes(32).toString('hex'); // Docker's shape: 64 hex digits, hostname = first 12
    const stateDir = join(this.base, 'containers', id);
    mkdirSync(stateDir, { recursive: true, mode: 0o700 });
    const target: IsolationTarget = { containerId: id, stateDir, hostConfig: opts.hostConfig ?? {} };
    const plan = this.basePlan(args, opts.process);
    const chain = IsolatorChain.of([this.isolator]);
    await chain.prepare(target, plan);
    const proc = await this.runtime.start(id, stateDir, plan, { attach: (pid) => chain.attach(target, pid) });
    return { id, stateDir, proc, target };
  }

  /** The isolators' cleanup phase for a container `start` made. */
  async cleanup(target: IsolationTarget): Promise<void> {
    await this.isolator.cleanup?.(target);
  }

  async run(args: string[], opts: RunOptions = {}): Promise<RunResult> {
    const { id, stateDir, proc, target } = await this.start(args, opts);
    await opts.afterStart?.(proc, stateDir, id);
    const exit = await this.runtime.wait(id, stateDir);
    await this.cleanup(target);
    const log = readLog(this.runtime.logPath(id, stateDir));
    return {
      id,
      stateDir,
      exit,
      log,
      stdout: log
        .filter((l) => l.stream === 'stdout')
        .map((l) => l.log)
        .join(''),
      stderr: log
        .filter((l) => l.stream === 'stderr')
        .map((l) => l.log)
        .join(''),
    };
  }

  /** Mount points under this harness's temp dir (there must be none after a container exits). */
  leftoverMounts(): string[] {
    return readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .filter((l) => l.includes(this.base));
  }

  dispose(): void {
    rmSync(this.base, { recursive: true, force: true });
  }
}

export function readLog(file: string): { log: string; stream: string; time: string }[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));
}
