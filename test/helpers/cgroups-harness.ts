/**
 * ContainerHarness with a second isolator: runtime.native + isolator.namespaces + isolator.cgroups,
 * driven in the container manager's order (setup -> plan per isolator, attach while the child
 * waits, cleanup in reverse).
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { IsolatorChain } from '../../core/containers/isolator-chain';
import type { IsolationTarget, Isolator } from '../../core/contracts/isolator';
import type { PluginContext } from '../../core/contracts/plugin';
import type { RuntimeProcess } from '../../core/contracts/runtime';
import type { Logger } from '../../core/contracts/types';
import cgroupsPlugin from '../../plugins/isolator-cgroups/index';
import type { CgroupsIsolator } from '../../plugins/isolator-cgroups/isolator';
import { ContainerHarness, type RunOptions } from './rootfs';

const quietLog: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  child() {
    return quietLog;
  },
};

export class CgroupsHarness extends ContainerHarness {
  cgroups!: CgroupsIsolator;

  override async init(namespacesConfig: Record<string, unknown> = {}, cgroupsConfig: Record<string, unknown> = {}): Promise<this> {
    await super.init(namespacesConfig);
    const raw = { ...(cgroupsPlugin.defaults ?? {}), ...cgroupsConfig } as Record<string, unknown>;
    const ctx = {
      uri: 'isolator.cgroups',
      config: cgroupsPlugin.parseConfig!(raw),
      root: this.base,
      stateDir: join(this.base, 'plugins', 'isolator.cgroups'),
      container: undefined as never,
      log: quietLog,
      getSingle: () => undefined,
      getAll: () => [],
    } satisfies PluginContext<unknown>;
    this.cgroups = await cgroupsPlugin.init(ctx as never);
    return this;
  }

  get isolators(): Isolator[] {
    return [this.isolator, this.cgroups];
  }

  override async start(args: string[], opts: RunOptions = {}): Promise<{ id: string; stateDir: string; proc: RuntimeProcess; target: IsolationTarget }> {
    const id = randomBytes(32).toString('hex');
    const stateDir = join(this.base, 'containers', id);
    mkdirSync(stateDir, { recursive: true, mode: 0o700 });
    const target: IsolationTarget = { containerId: id, stateDir, hostConfig: opts.hostConfig ?? {} };
    const plan = this.basePlan(args, opts.process);
    const chain = IsolatorChain.of(this.isolators);
    try {
      await chain.prepare(target, plan);
      const proc = await this.runtime.start(id, stateDir, plan, { attach: (pid) => chain.attach(target, pid) });
      return { id, stateDir, proc, target };
    } catch (err) {
      await chain.cleanup(target);
      throw err;
    }
  }

  override async cleanup(target: IsolationTarget): Promise<void> {
    const errors: Error[] = [];
    await IsolatorChain.of(this.isolators).cleanup(target, (err) => errors.push(err));
    if (errors.length) throw errors[0];
  }
}

/** Every directory named `name` (or one of `names`) anywhere under /sys/fs/cgroup (all hierarchies). */
export function findCgroupDirs(names: string | Set<string>, root = '/sys/fs/cgroup'): string[] {
  const wanted = typeof names === 'string' ? new Set([names]) : names;
  const found: string[] = [];
  const walk = (dir: string, depth: number) => {
    let entries;
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (!e.isDirectory()) continue;
      const p = join(dir, e.name);
      if (wanted.has(e.name)) found.push(p);
      if (depth < 8) walk(p, depth + 1);
    }
  };
  if (statSync(root, { throwIfNoEntry: false })) walk(root, 0);
  return found;
}
