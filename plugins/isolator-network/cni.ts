/**
 * A small CNI runtime (CNI spec 1.0): runs the plugins of a network configuration list in order
 * for ADD and CHECK, in reverse for DEL, passing each one its config on stdin (with `name`,
 * `cniVersion` and the previous result as `prevResult`) and the request through CNI_* variables.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import * as path from 'node:path';

export type CniCommand = 'ADD' | 'DEL' | 'CHECK';

export interface CniRequest {
  containerId: string;
  /** /proc/PID/ns/net; empty for a DEL after the namespace is gone. */
  netns: string;
  ifname: string;
  /** CNI_ARGS pairs, e.g. { IP: '10.207.1.9' } for host-local. */
  args?: Record<string, string>;
}

export interface CniResult {
  cniVersion?: string;
  interfaces?: { name: string; mac?: string; sandbox?: string }[];
  ips?: { address: string; gateway?: string; interface?: number }[];
  routes?: { dst: string; gw?: string }[];
  dns?: unknown;
}

export class CniError extends Error {
  constructor(
    readonly plugin: string,
    readonly code: number | undefined,
    message: string,
  ) {
    super(`CNI plugin ${plugin}: ${message}`);
  }
}

export class CniRuntime {
  constructor(private readonly dirs: string[]) {}

  find(type: string): string | undefined {
    if (!/^[a-zA-Z0-9_.-]+$/.test(type)) return undefined;
    return this.dirs.map((d) => path.join(d, type)).find((p) => existsSync(p));
  }

  /** ADD: every plugin in order; the last result is the network's result. */
  async add(conflist: Record<string, unknown>, req: CniRequest): Promise<CniResult> {
    let prev: CniResult | undefined;
    for (const p of plugins(conflist)) prev = await this.exec('ADD', conflist, p, req, prev);
    return prev ?? {};
  }

  /** CHECK: every plugin in order against the cached result. */
  async check(conflist: Record<string, unknown>, req: CniRequest, result: CniResult): Promise<void> {
    for (const p of plugins(conflist)) await this.exec('CHECK', conflist, p, req, result);
  }

  /** DEL: every plugin in reverse order; each is run even when an earlier one failed. */
  async del(conflist: Record<string, unknown>, req: CniRequest, result?: CniResult): Promise<void> {
    let first: Error | undefined;
    for (const p of [...plugins(conflist)].reverse()) {
      await this.exec('DEL', conflist, p, req, result).catch((err) => (first ??= err));
    }
    if (first) throw first;
  }

  private exec(command: CniCommand, conflist: Record<string, unknown>, plugin: Record<string, unknown>, req: CniRequest, prevResult?: CniResult): Promise<CniResult | undefined> {
    const type = String(plugin.type);
    const bin = this.find(type);
    if (!bin) return Promise.reject(new CniError(type, undefined, `binary not found in ${this.dirs.join(':')}`));
    const stdin = JSON.stringify({ ...plugin, cniVersion: conflist.cniVersion, name: conflist.name, ...(prevResult ? { prevResult } : {}) });
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
      CNI_COMMAND: command,
      CNI_CONTAINERID: req.containerId,
      CNI_NETNS: req.netns,
      CNI_IFNAME: req.ifname,
      CNI_PATH: this.dirs.join(':'),
    };
    if (req.args && Object.keys(req.args).length) env.CNI_ARGS = ['IgnoreUnknown=1', ...Object.entries(req.args).map(([k, v]) => `${k}=${v}`)].join(';');
    return new Promise((resolve, reject) => {
      const child = spawn(bin, [], { env, stdio: ['pipe', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout.on('data', (d) => (out += d));
      child.stderr.on('data', (d) => (err += d));
      child.on('error', (e) => reject(new CniError(type, undefined, e.message)));
      child.on('close', (code) => {
        let parsed: Record<string, unknown> | undefined;
        try {
          parsed = out.trim() ? JSON.parse(out) : undefined;
        } catch {
          parsed = undefined;
        }
        if (code !== 0) {
          const msg = parsed?.msg ? `${parsed.msg}${parsed.details ? `: ${parsed.details}` : ''}` : err.trim() || out.trim() || `exited ${code}`;
          reject(new CniError(type, parsed?.code as number | undefined, `${command} failed: ${msg}`));
          return;
        }
        resolve(command === 'ADD' ? (parsed as CniResult) : undefined);
      });
      child.stdin.on('error', () => undefined);
      child.stdin.end(stdin);
    });
  }
}

function plugins(conflist: Record<string, unknown>): Record<string, unknown>[] {
  const list = conflist.plugins;
  if (!Array.isArray(list) || !list.length) throw new Error(`CNI network ${String(conflist.name)}: no plugins`);
  return list as Record<string, unknown>[];
}
