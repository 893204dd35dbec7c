/**
 * The conformance suite every isolator passes (built-in or third-party). It needs no root: it
 * drives the phases that shape the launch plan and checks the contract, not the kernel.
 *
 *   import { isolatorConformance } from 'berth/testing';
 *   isolatorConformance('readonly', () => new ReadonlyRootfsIsolator({ tmpfs: ['/tmp'], tmpfsSize: '64m' }));
 *
 * It imports describe/it/expect from vitest itself (no globals needed).
 */
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { IsolatorChain } from '../../core/containers/isolator-chain';
import type { IsolationTarget, Isolator } from '../../core/contracts/isolator';
import type { LaunchPlan } from '../../core/contracts/launch';
import { CAPABILITIES } from '../../core/launcher/caps';
import { newLaunchPlan, serializePlan } from '../../core/launcher/plan';

const NAMESPACES = ['pid', 'mount', 'uts', 'ipc', 'net', 'cgroup', 'user'];

/** The plan the container manager hands the first isolator (DESIGN.md section 5). */
export function basePlan(rootfs: string): LaunchPlan {
  return newLaunchPlan(rootfs, { args: ['sh'], env: ['PATH=/bin'], cwd: '/', uid: 0, gid: 0, additionalGids: [], terminal: false }, 'conformance');
}

export function isolatorConformance(name: string, makeIsolator: () => Isolator | Promise<Isolator>): void {
  describe(`isolator conformance: ${name}`, () => {
    let dir: string;
    let target: IsolationTarget;

    beforeEach(async () => {
      dir = await fs.mkdtemp(path.join(os.tmpdir(), 'berth-iso-conf-'));
      await fs.mkdir(path.join(dir, 'state'), { mode: 0o700 });
      target = { containerId: 'c0ffee' + '0'.repeat(58), stateDir: path.join(dir, 'state'), hostConfig: { NetworkMode: 'default' } };
    });

    afterEach(async () => {
      await fs.rm(dir, { recursive: true, force: true });
    });

    it('has a name and only known phase methods', async () => {
      const iso = await makeIsolator();
      expect(typeof iso.name).toBe('string');
      expect(iso.name.length).toBeGreaterThan(0);
      for (const phase of ['setup', 'plan', 'attach', 'started', 'stats', 'cleanup'] as const) {
        if (iso[phase] !== undefined) expect(typeof iso[phase]).toBe('function');
      }
    });

    it('plan keeps what earlier isolators put in the plan and stays a plan the launcher accepts', async () => {
      const iso = await makeIsolator();
      const plan = basePlan(path.join(dir, 'rootfs'));
      const earlier = { destination: '/earlier', type: 'tmpfs', source: 'tmpfs', options: ['nosuid'] };
      plan.mounts.push(earlier);
      // Through the chain berthd starts containers with: setup, then plan.
      const chain = IsolatorChain.of([iso]);
      await chain.prepare(target, plan);
      await chain.cleanup(target);
      expect(plan.mounts).toContainEqual(earlier);
      for (const m of plan.mounts) expect(m.destination.startsWith('/'), `mount destination ${m.destination}`).toBe(true);
      for (const n of plan.namespaces) expect(NAMESPACES).toContain(n);
      for (const c of plan.capabilities) expect(CAPABILITIES).toContain(c);
      expect(plan.process.args).toEqual(['sh']);
      expect(() => serializePlan(plan, { stateDir: target.stateDir })).not.toThrow();
    });

    it('cleanup is safe without setup and safe twice (berthd may retry it after a crash)', async () => {
      const iso = await makeIsolator();
      await iso.cleanup?.(target);
      await iso.cleanup?.(target);
    });

    it('a bad HostConfig value is refused in setup or plan, not ignored silently into a crash', async () => {
      const iso = await makeIsolator();
      const bad = { ...target, hostConfig: { NetworkMode: 42 as unknown as string } };
      // Either it ignores the key (not its business) or it throws a clear error; it never hangs.
      await Promise.race([
        (async () => {
          await iso.setup?.(bad).catch((e: Error) => expect(e.message.length).toBeGreaterThan(0));
          await iso.plan?.(bad, basePlan(path.join(dir, 'rootfs')))?.catch?.((e: Error) => expect(e.message.length).toBeGreaterThan(0));
        })().catch((e: Error) => expect(e.message.length).toBeGreaterThan(0)),
        new Promise((_, reject) => setTimeout(() => reject(new Error('isolator hung on bad input')), 5000)),
      ]);
      await iso.cleanup?.(bad);
    });
  });
}
