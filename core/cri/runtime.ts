/**
 * The CRI RuntimeService on berth's container manager, in parts: pod sandboxes (sandboxes.ts,
 * networking in cni.ts), their containers (containers.ts), commands and streaming (exec.ts) and
 * stats (stats.ts). This file wires them and answers Version and Status.
 */
import type { Engine } from '../kernel/engine';
import { ENGINE_VERSION } from '../kernel/engine';
import { CriContainers } from './containers';
import { CriExec } from './exec';
import { CriObjects } from './objects';
import { CriSandboxes } from './sandboxes';
import { CriStats } from './stats';

export class CriRuntime {
  readonly stats: CriStats;
  readonly containers: CriContainers;
  readonly sandboxes: CriSandboxes;
  readonly exec: CriExec;

  constructor(private readonly engine: Engine) {
    const objects = new CriObjects(engine);
    this.stats = new CriStats(engine, objects);
    this.containers = new CriContainers(engine, objects, this.stats);
    this.sandboxes = new CriSandboxes(engine, objects, this.containers, this.stats);
    this.exec = new CriExec(engine, objects, (sandbox) => this.sandboxes.ips(sandbox));
  }

  /** After a berthd restart: pick up what still runs. */
  async recover(): Promise<void> {
    await this.containers.recover();
    await this.sandboxes.recover();
  }

  async close(): Promise<void> {
    this.sandboxes.close();
    await this.containers.close();
  }

  version(apiVersion: string) {
    return { version: '0.1.0', runtime_name: 'berth', runtime_version: ENGINE_VERSION, runtime_api_version: apiVersion };
  }

  /** NetworkReady is the CNI conf dir's: a usable config and a runner for it (containerd's reasons). */
  status(verbose: boolean) {
    const runtimeReady = !!this.engine.runtime() && !!this.engine.storage();
    const cni = this.sandboxes.cni.choose();
    const condition = (type: string, ok: boolean, reason: string, message: string) => ({ type, status: ok, reason: ok ? '' : reason, message: ok ? '' : message });
    return {
      status: {
        conditions: [
          condition('RuntimeReady', runtimeReady, 'RuntimeNotReady', `no runtime or storage driver: ${this.engine.plugins.whyMissing(this.engine.runtime() ? 'storage' : 'runtime')}`),
          condition('NetworkReady', 'config' in cni, 'NetworkPluginNotReady', 'reason' in cni ? `Network plugin returns error: ${cni.reason}` : ''),
        ],
      },
      info: verbose ? { config: JSON.stringify({ root: this.engine.config.root, cri: this.engine.config.cri, cniConfig: 'file' in cni ? cni.file : null }) } : {},
    };
  }
}
