/**
 * The container lifecycle of the real engine (ContainerManager, restart policies, isolator phase
 * order, state on disk) with fake plugins from berth/testing in place of the runtime, the storage
 * driver and the isolators: no root, no kernel features, so it runs anywhere in milliseconds.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import * as tar from 'tar-stream';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Logger } from '../../core/contracts/types';
import { validateConfig } from '../../core/kernel/config';
import { Engine } from '../../core/kernel/engine';
import type { FakeRuntime } from '../../core/testing';
import { phases } from './lifecycle-plugins/phases';

const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => quiet };
const fixture = (name: string) => path.join(__dirname, 'lifecycle-plugins', `${name}.ts`);

let root: string;
let engine: Engine;
let runtime: FakeRuntime;
let image: string;

async function layerTar(): Promise<Buffer> {
  const pack = tar.pack();
  pack.entry({ name: 'etc/', type: 'directory' });
  pack.entry({ name: 'etc/hostname' }, 'lifecycle\n');
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

async function until<T>(what: string, probe: () => T | undefined | false, ms = 5000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = probe();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const stateDir = (id: string) => path.join(root, 'containers', id);
const create = async (extra: Record<string, unknown> = {}) => (await engine.containers.create({ Image: image, Cmd: ['serve'], HostConfig: { NetworkMode: 'none' }, ...extra } as never)).Id;

beforeAll(async () => {
  root = mkdtempSync(path.join(os.tmpdir(), 'berth-lifecycle-'));
  const config = validateConfig({ root, storage: { driver: 'memory' }, runtime: 'fake', isolators: ['rec-a', 'rec-b'] });
  engine = new Engine(config, quiet);
  await engine.start([fixture('runtime-fake'), fixture('storage-memory'), fixture('isolator-a'), fixture('isolator-b')]);
  runtime = engine.plugins.getSingle<FakeRuntime>('runtime')!;
  image = (await engine.importer.import(Readable.from(await layerTar()), { repo: 'lifecycle', tag: '1', source: '-' })).id;
});

afterAll(async () => {
  await engine?.stop();
  rmSync(root, { recursive: true, force: true });
});

beforeEach(() => {
  phases.length = 0;
});

describe('container lifecycle on fake plugins (no root)', () => {
  it('runs the isolators setup, plan, attach, started in config order, and cleanup in reverse', async () => {
    const id = await create();
    await engine.containers.start(id);
    expect(engine.containers.get(id).State).toMatchObject({ Status: 'running', Running: true, Pid: expect.any(Number) });
    const plan = runtime.starts.at(-1)!.plan;
    expect(plan.process.args).toEqual(['serve']);
    expect(plan.process.env).toEqual(expect.arrayContaining(['RECORDED_BY_REC_A=1', 'RECORDED_BY_REC_B=1']));
    runtime.exit(stateDir(id), 3);
    expect(await engine.containers.waitFor(id)).toMatchObject({ StatusCode: 3 });
    await until('cleanup', () => phases.length === 10);
    expect(phases.map((p) => p.replace(` ${id}`, ''))).toEqual([
      'rec-a setup',
      'rec-a plan',
      'rec-b setup',
      'rec-b plan',
      'rec-a attach',
      'rec-b attach',
      'rec-a started',
      'rec-b started',
      'rec-b cleanup',
      'rec-a cleanup',
    ]);
    expect(engine.containers.get(id).State).toMatchObject({ Status: 'exited', Running: false, ExitCode: 3, Pid: 0 });
  });

  it('a failing phase fails the start naming the plugin and phase, and cleans up what ran', async () => {
    const recB = engine.plugins.get<{ failIn?: unknown }>('isolator.rec-b')!;
    recB.failIn = { phase: 'attach', message: 'no room in the cgroup' };
    try {
      const id = await create();
      await expect(engine.containers.start(id)).rejects.toThrow(/^isolator\.rec-b attach: no room in the cgroup$/);
      expect(engine.containers.get(id).State).toMatchObject({ Running: false, Status: 'created' });
      expect(engine.containers.get(id).State.Error).toMatch(/no room in the cgroup/);
      expect(phases.filter((p) => p.includes('cleanup')).map((p) => p.split(' ')[0])).toEqual(['rec-b', 'rec-a']);
      expect(runtime.running(stateDir(id))).toBe(false);
    } finally {
      recB.failIn = undefined;
    }
  });

  it('stop sends the stop signal, then SIGKILL after the timeout to a process that ignores it', async () => {
    const polite = await create();
    await engine.containers.start(polite);
    await engine.containers.stop(polite, 5);
    expect(runtime.signals.filter((s) => s.containerId === polite).map((s) => s.signal)).toEqual(['SIGTERM']);
    expect(engine.containers.get(polite).State).toMatchObject({ Running: false, ExitCode: 143 });

    const stubborn = await create({ StopSignal: 'SIGTERM' });
    runtime.ignoresTerm.add(stubborn);
    await engine.containers.start(stubborn);
    await engine.containers.stop(stubborn, 0);
    expect(runtime.signals.filter((s) => s.containerId === stubborn).map((s) => s.signal)).toEqual(['SIGTERM', 'SIGKILL']);
    expect(engine.containers.get(stubborn).State).toMatchObject({ Running: false, ExitCode: 137 });
  });

  it('on-failure:2 restarts a failing container twice, then leaves it exited', async () => {
    const id = await create({ HostConfig: { NetworkMode: 'none', RestartPolicy: { Name: 'on-failure', MaximumRetryCount: 2 } } });
    await engine.containers.start(id);
    for (let run = 1; run <= 3; run++) {
      await until(`run ${run}`, () => runtime.running(stateDir(id)) && engine.containers.get(id).State.Running);
      expect(engine.containers.get(id).RestartCount).toBe(run - 1);
      runtime.exit(stateDir(id), 1);
      await until(`exit ${run}`, () => !engine.containers.get(id).State.Running);
    }
    await new Promise((r) => setTimeout(r, 1000)); // past the next back-off: no fourth run
    expect(runtime.running(stateDir(id))).toBe(false);
    expect(engine.containers.get(id)).toMatchObject({ RestartCount: 2, State: { Status: 'exited', ExitCode: 1 } });
  });

  it('a manual stop ends the always policy; an exit 0 does not restart on-failure', async () => {
    const always = await create({ HostConfig: { NetworkMode: 'none', RestartPolicy: { Name: 'always' } } });
    await engine.containers.start(always);
    await engine.containers.stop(always, 1);
    await new Promise((r) => setTimeout(r, 300));
    expect(engine.containers.get(always).State.Running).toBe(false);

    const clean = await create({ HostConfig: { NetworkMode: 'none', RestartPolicy: { Name: 'on-failure' } } });
    await engine.containers.start(clean);
    runtime.exit(stateDir(clean), 0);
    await until('exit', () => !engine.containers.get(clean).State.Running);
    await new Promise((r) => setTimeout(r, 300));
    expect(engine.containers.get(clean)).toMatchObject({ RestartCount: 0, State: { Status: 'exited', ExitCode: 0 } });
  });

  it('refuses what the state forbids: remove while running, kill when stopped, start twice is a no-op', async () => {
    const id = await create();
    await expect(engine.containers.kill(id)).rejects.toThrow(/is not running/);
    await engine.containers.start(id);
    const pid = engine.containers.get(id).State.Pid;
    await engine.containers.start(id); // Docker answers 304
    expect(engine.containers.get(id).State.Pid).toBe(pid);
    await expect(engine.containers.remove(id)).rejects.toMatchObject({ status: 409, message: expect.stringMatching(/running/) });
    await engine.containers.remove(id, { force: true });
    expect(() => engine.containers.get(id)).toThrow(/No such container/);
    expect(runtime.running(stateDir(id))).toBe(false);
  });
  it('always: an exit is followed by restarting (the back-off), then a new run counted in RestartCount', async () => {
    const id = await create({ HostConfig: { NetworkMode: 'none', RestartPolicy: { Name: 'always' } } });
    await engine.containers.start(id);
    const firstPid = engine.containers.get(id).State.Pid;
    // The policy acts right after the exit is saved and announced: look at the state just then.
    const afterExit = new Promise<unknown>((resolve) => {
      const onExit = (eid: string) => {
        if (eid !== id) return;
        engine.containers.off('exit', onExit);
        queueMicrotask(() => resolve(structuredClone(engine.containers.get(id).State)));
      };
      engine.containers.on('exit', onExit);
    });
    runtime.exit(stateDir(id), 0);
    expect(await afterExit).toMatchObject({ Status: 'restarting', Restarting: true, Running: false, ExitCode: 0 });
    await until('the restart', () => engine.containers.get(id).State.Running);
    expect(engine.containers.get(id)).toMatchObject({ RestartCount: 1, State: { Status: 'running', Restarting: false } });
    expect(engine.containers.get(id).State.Pid).not.toBe(firstPid);
    await engine.containers.remove(id, { force: true });
  });

  it('a start by hand during the back-off runs the container once and leaves it running, not restarting', async () => {
    const id = await create({ HostConfig: { NetworkMode: 'none', RestartPolicy: { Name: 'unless-stopped' } } });
    await engine.containers.start(id);
    // As after ten restarts: a back-off of a minute, so the hand is surely first.
    engine.containers.get(id).RestartCount = 10;
    const exited = engine.containers.waitFor(id, 'next-exit');
    runtime.exit(stateDir(id), 2);
    await exited;
    expect(engine.containers.get(id).State).toMatchObject({ Status: 'restarting', Restarting: true });
    await engine.containers.start(id);
    expect(engine.containers.get(id)).toMatchObject({ RestartCount: 10, State: { Status: 'running', Running: true, Restarting: false } });
    await engine.containers.remove(id, { force: true });
  });

  it('remove --force of a running container: whoever waits on it learns the kill (137)', async () => {
    const id = await create();
    await engine.containers.start(id);
    const waited = engine.containers.waitFor(id, 'removed');
    await engine.containers.remove(id, { force: true });
    expect(await waited).toEqual({ StatusCode: 137 });
    expect(runtime.signals.filter((s) => s.containerId === id).map((s) => s.signal)).toEqual(['SIGKILL']);
  });

  it('pause without an isolator that can freeze is refused naming the isolators there are', async () => {
    const id = await create();
    await engine.containers.start(id);
    await expect(engine.containers.pause(id)).rejects.toMatchObject({ status: 501, message: expect.stringMatching(/pause needs an isolator .* configured: isolator\.rec-a, isolator\.rec-b/) });
    expect(engine.containers.get(id).State).toMatchObject({ Status: 'running', Paused: false });
    await engine.containers.remove(id, { force: true });
  });
});
