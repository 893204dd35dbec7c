import type { IsolationTarget, Isolator, LaunchPlan } from 'berth/plugin';

export interface ReadonlyConfig {
  /** Container paths that get a private, writable tmpfs. */
  tmpfs: string[];
  /** tmpfs size option (`64m`). */
  tmpfsSize: string;
}

export class ReadonlyRootfsIsolator implements Isolator {
  readonly name = 'readonly';

  constructor(private readonly config: ReadonlyConfig) {}

  /** Plan phase only: no host-side state, so no setup, attach or cleanup. */
  plan(target: IsolationTarget, plan: LaunchPlan): void {
    // HostConfig.Tmpfs-style binds the user asked for win over ours.
    const taken = new Set(plan.mounts.map((m) => m.destination));
    for (const destination of this.config.tmpfs) {
      if (taken.has(destination)) continue;
      plan.mounts.push({ destination, type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'mode=1777', `size=${this.config.tmpfsSize}`] });
    }
    plan.readonlyRootfs = true;
    void target;
  }
}
