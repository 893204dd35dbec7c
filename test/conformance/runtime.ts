/**
 * The conformance suite every runtime passes (built-in or third-party): real processes in a
 * busybox rootfs, in their own mount, pid, uts and ipc namespaces, with no isolator. It checks the
 * contract of core/contracts/runtime.ts: the attach window before exec, exit codes, the json-file
 * log, kill, state from the state dir alone, start failures and delete. Needs root.
 *
 *   import { runtimeConformance } from 'berth/testing';
 *   runtimeConformance('timed', async () => new TimedRuntime(inner, '/tmp/timings.jsonl'));
 *
 * It imports describe/it/expect from vitest itself (no globals needed).
 */
import { randomBytes } from 'node:crypto';
import { existsSync, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LaunchPlan } from '../../core/contracts/launch';
import type { Runtime } from '../../core/contracts/runtime';
import { newLaunchPlan } from '../../core/launcher/plan';
import { buildBusyboxRootfs } from '../helpers/busybox-rootfs';

export function runtimeConformance(name: string, makeRuntime: (dir: string) => Promise<Runtime>): void {
  describe(`runtime conformance: ${name}`, () => {
    let dir: string;
    let rootfs: string;
    let runtime: Runtime;
    const started: { id: string; stateDir: string }[] = [];

    beforeAll(async () => {
      dir = await fs.mkdtemp(path.join(os.tmpdir(), 'berth-rt-conf-'));
      rootfs = buildBusyboxRootfs(path.join(dir, 'rootfs'));
      runtime = await makeRuntime(dir);
    });

    afterAll(async () => {
      // Nothing may outlive the suite: every process is killed, waited for and deleted.
      for (const { id, stateDir } of started) {
        if ((await runtime.state(id, stateDir)).status === 'running') {
          await runtime.kill(id, stateDir, 'SIGKILL').catch(() => undefined);
          await runtime.wait(id, stateDir);
        }
        await runtime.delete(id, stateDir);
      }
      await runtime?.close?.();
      if (dir) await fs.rm(dir, { recursive: true, force: true });
    });

    const container = async () => {
      const id = randomBytes(32).toString('hex');
      const stateDir = path.join(dir, 'containers', id);
      await fs.mkdir(stateDir, { recursive: true, mode: 0o700 });
      started.push({ id, stateDir });
      return { id, stateDir };
    };

    const plan = (args: string[]): LaunchPlan => ({
      ...newLaunchPlan(rootfs, { args, env: ['PATH=/bin'], cwd: '/', uid: 0, gid: 0, additionalGids: [], terminal: false }, 'conformance'),
      namespaces: ['mount', 'pid', 'uts', 'ipc'],
      mounts: [{ destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] }],
    });

    const logLines = async (id: string, stateDir: string) =>
      (await fs.readFile(runtime.logPath(id, stateDir), 'utf8'))
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as { log: string; stream: string; time: string });

    it('has a name, and a state dir never started is absent', async () => {
      expect(typeof runtime.name).toBe('string');
      const { id, stateDir } = await container();
      expect((await runtime.state(id, stateDir)).status).toBe('absent');
    });

    it('runs the plan: exit code, stdout and stderr in the json-file log, exited state', async () => {
      const { id, stateDir } = await container();
      const proc = await runtime.start(id, stateDir, plan(['sh', '-c', 'echo out; echo err >&2; hostname; exit 3']));
      expect(proc.pid).toBeGreaterThan(1);
      expect(Number.isNaN(Date.parse(proc.startedAt))).toBe(false);
      const exit = await runtime.wait(id, stateDir);
      expect(exit.exitCode).toBe(3);
      expect(exit.oomKilled).toBe(false);
      const lines = await logLines(id, stateDir);
      expect(
        lines
          .filter((l) => l.stream === 'stdout')
          .map((l) => l.log)
          .join(''),
      ).toBe('out\nconformance\n');
      expect(
        lines
          .filter((l) => l.stream === 'stderr')
          .map((l) => l.log)
          .join(''),
      ).toBe('err\n');
      for (const l of lines) expect(Number.isNaN(Date.parse(l.time))).toBe(false);
      const state = await runtime.state(id, stateDir);
      expect(state.status).toBe('exited');
      expect(state.exit?.exitCode).toBe(3);
    });

    it('runs hooks.attach with the waiting process before it execs', async () => {
      const { id, stateDir } = await container();
      const marker = `attach-${id.slice(0, 12)}`;
      let attachedPid = 0;
      // The file the hook writes is there when the process looks: the hook ran before the exec.
      const proc = await runtime.start(id, stateDir, plan(['cat', `/tmp/${marker}`]), {
        attach: async (pid) => {
          attachedPid = pid;
          await fs.writeFile(path.join(rootfs, 'tmp', marker), `pid ${pid}\n`);
        },
      });
      expect((await runtime.wait(id, stateDir)).exitCode).toBe(0);
      expect(attachedPid).toBe(proc.pid);
      const stdout = (await logLines(id, stateDir)).map((l) => l.log).join('');
      expect(stdout).toBe(`pid ${proc.pid}\n`);
    });

    it('a failing attach aborts the start with its error, and nothing runs', async () => {
      const { id, stateDir } = await container();
      const marker = path.join(rootfs, 'tmp', `ran-${id.slice(0, 12)}`);
      const start = runtime.start(id, stateDir, plan(['touch', `/tmp/ran-${id.slice(0, 12)}`]), {
        attach: () => {
          throw new Error('attach refused by the test');
        },
      });
      await expect(start).rejects.toThrow(/attach refused by the test/);
      expect((await runtime.state(id, stateDir)).status).not.toBe('running');
      expect(existsSync(marker)).toBe(false);
    });

    it('kill signals a running process (128 + N), and refuses once it exited', async () => {
      const { id, stateDir } = await container();
      const proc = await runtime.start(id, stateDir, plan(['sleep', '600']));
      const running = await runtime.state(id, stateDir);
      expect(running.status).toBe('running');
      expect(running.pid).toBe(proc.pid);
      // SIGKILL: pid 1 of a pid namespace ignores signals it has no handler for.
      await runtime.kill(id, stateDir, 'SIGKILL');
      expect((await runtime.wait(id, stateDir)).exitCode).toBe(137);
      await expect(runtime.kill(id, stateDir, 'SIGKILL')).rejects.toThrow(/not running/);
    });

    it('refuses a start whose program does not exist, naming it', async () => {
      const { id, stateDir } = await container();
      await expect(runtime.start(id, stateDir, plan(['/bin/no-such-program']))).rejects.toThrow(/no-such-program/);
      expect((await runtime.state(id, stateDir)).status).not.toBe('running');
    });

    it('delete refuses a running process, and after the exit leaves the state dir as never started', async () => {
      const { id, stateDir } = await container();
      await runtime.start(id, stateDir, plan(['sleep', '600']));
      await expect(runtime.delete(id, stateDir)).rejects.toThrow(/running/);
      await runtime.kill(id, stateDir, 'KILL');
      await runtime.wait(id, stateDir);
      await runtime.delete(id, stateDir);
      expect((await runtime.state(id, stateDir)).status).toBe('absent');
    });
  });
}
