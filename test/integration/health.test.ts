/**
 * Healthchecks on a real berthd: probes run as exec sessions on their interval, State.Health
 * follows dockerd's rules (starting -> healthy / unhealthy after Retries failures, start period,
 * timeouts, the last five results), status changes are events, `ps` shows the status, probing
 * stops with the container, and a restarted berthd re-arms the probes of the containers it adopts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningDaemon, expectOk, startDaemon } from '../helpers/daemon';
import { isRoot, rootReason, until } from '../helpers/env';
import { pushBusybox } from '../helpers/fixtures';
import { type RunningRegistry, startRegistry } from '../helpers/registry';

const MS = 1_000_000; // Healthcheck durations are nanoseconds

describe.skipIf(!isRoot)(`healthchecks (${isRoot ? 'root' : rootReason})`, () => {
  let registry: RunningRegistry;
  let daemon: RunningDaemon;
  let restarted: RunningDaemon | undefined;
  let img: string;

  beforeAll(async () => {
    registry = await startRegistry();
    img = `${registry.host}/test/health:latest`;
    await pushBusybox(registry.host, 'test/health:latest');
    daemon = await startDaemon();
    expectOk(await daemon.cli(['pull', '-q', img]));
  });

  afterAll(async () => {
    const live = restarted ?? daemon;
    await live?.removeAllContainers();
    await restarted?.stop();
    await daemon?.stop();
    await registry?.stop();
  });

  async function run(healthcheck: object, cmd = ['sleep', '300'], api = daemon): Promise<string> {
    const created = await api.api('/containers/create', { method: 'POST', body: { Image: img, Cmd: cmd, Healthcheck: healthcheck } });
    expect(created.status, created.body).toBe(201);
    const started = await api.api(`/containers/${created.json.Id}/start`, { method: 'POST' });
    expect(started.status, started.body).toBe(204);
    return created.json.Id;
  }

  const health = async (id: string, api = daemon) => (await api.api(`/containers/${id}/json`)).json.State.Health;

  it('goes from starting to healthy to unhealthy after Retries failures, with events and ps status', async () => {
    const since = Math.floor(Date.now() / 1000);
    const id = await run({ Test: ['CMD-SHELL', 'echo probing; test -f /tmp/ok'], Interval: 200 * MS, Timeout: 2000 * MS, Retries: 2 });
    const first = await health(id);
    expect(first).toMatchObject({ Status: 'starting', FailingStreak: 0 });
    const list = async () => (await daemon.api('/containers/json')).json.find((c: { Id: string }) => c.Id === id).Status;
    expect(await list()).toMatch(/^Up .* \(health: starting\)$/);

    // Failing, not yet Retries times: still starting; then unhealthy.
    await until('unhealthy', async () => (await health(id)).Status === 'unhealthy', 10_000);
    const failing = await health(id);
    expect(failing.FailingStreak).toBeGreaterThanOrEqual(2);
    expect(failing.Log.at(-1)).toMatchObject({ ExitCode: 1, Output: 'probing\n' });
    expect(Date.parse(failing.Log.at(-1).End)).toBeGreaterThanOrEqual(Date.parse(failing.Log.at(-1).Start));
    expect(await list()).toMatch(/ \(unhealthy\)$/);

    expectOk(await daemon.cli(['exec', id, 'touch', '/tmp/ok']));
    await until('healthy', async () => (await health(id)).Status === 'healthy', 10_000);
    expect((await health(id)).FailingStreak).toBe(0);
    expect(await list()).toMatch(/^Up .* \(healthy\)$/);
    // Only the last five results are kept.
    await until('five log entries', async () => (await health(id)).Log.length === 5, 10_000);
    await new Promise((r) => setTimeout(r, 600));
    expect((await health(id)).Log).toHaveLength(5);

    const until_ = Math.ceil(Date.now() / 1000) + 1;
    const events = (await daemon.api(`/events?since=${since}&until=${until_}&filters=${encodeURIComponent(JSON.stringify({ container: [id] }))}`)).body
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l).Action)
      .filter((a: string) => a.startsWith('health_status'));
    expect(events).toEqual(['health_status: unhealthy', 'health_status: healthy']);
  });

  it('kills a probe that exceeds its timeout and records -1', async () => {
    const id = await run({ Test: ['CMD', 'sleep', '7'], Interval: 300 * MS, Timeout: 300 * MS, Retries: 1 });
    await until('unhealthy', async () => (await health(id)).Status === 'unhealthy', 10_000);
    expect((await health(id)).Log[0]).toMatchObject({ ExitCode: -1, Output: 'Health check exceeded timeout (300ms)' });
    // The probe process was killed, not left behind.
    await until('no probe left running', async () => !expectOk(await daemon.cli(['exec', id, 'ps', '-o', 'args'])).stdout.includes('sleep 7'), 3000);
  });

  it('does not count failures inside the start period', async () => {
    const id = await run({ Test: ['CMD', 'false'], Interval: 200 * MS, StartPeriod: 60_000 * MS, Retries: 1 });
    await until('three probes', async () => (await health(id)).Log.length >= 3, 10_000);
    expect(await health(id)).toMatchObject({ Status: 'starting', FailingStreak: 0 });
  });

  it('takes HEALTHCHECK from the image, and --no-healthcheck (NONE) turns it off', async () => {
    const dockerfile = `FROM ${img}\nHEALTHCHECK --interval=1s --retries=1 CMD true\n`;
    const built = await daemon.cli(['build', '-q', '-t', 'health-image:latest', '-'], { input: dockerfile });
    expectOk(built);
    const created = await daemon.api('/containers/create', { method: 'POST', body: { Image: 'health-image:latest', Cmd: ['sleep', '300'] } });
    expect(created.status, created.body).toBe(201);
    const inspected = (await daemon.api(`/containers/${created.json.Id}/json`)).json;
    expect(inspected.Config.Healthcheck).toMatchObject({ Test: ['CMD-SHELL', 'true'], Interval: 1000 * MS, Retries: 1 });
    expectOk(await daemon.cli(['start', created.json.Id]));
    await until('healthy', async () => (await health(created.json.Id))?.Status === 'healthy', 10_000);

    const off = await daemon.api('/containers/create', { method: 'POST', body: { Image: 'health-image:latest', Cmd: ['sleep', '300'], Healthcheck: { Test: ['NONE'] } } });
    expectOk(await daemon.cli(['start', off.json.Id]));
    await new Promise((r) => setTimeout(r, 1500));
    expect(await health(off.json.Id)).toBeUndefined();
  });

  it('refuses a bad healthcheck with the field named', async () => {
    const res = await daemon.api('/containers/create', { method: 'POST', body: { Image: img, Healthcheck: { Test: ['CMD', 'true'], Interval: 5 } } });
    expect(res.status).toBe(400);
    expect(res.json.message).toContain('Healthcheck.Interval');
    const kind = await daemon.api('/containers/create', { method: 'POST', body: { Image: img, Healthcheck: { Test: ['SHELL', 'true'] } } });
    expect(kind.status).toBe(400);
    expect(kind.json.message).toContain('Healthcheck.Test');
  });

  it('stops probing when the container stops, and reports it unhealthy', async () => {
    const id = await run({ Test: ['CMD', 'true'], Interval: 200 * MS });
    await until('healthy', async () => (await health(id)).Status === 'healthy', 10_000);
    expectOk(await daemon.cli(['stop', '-t', '0', id]));
    const stopped = await health(id);
    expect(stopped.Status).toBe('unhealthy');
    await new Promise((r) => setTimeout(r, 1000));
    expect((await health(id)).Log).toEqual(stopped.Log);
  });

  it('re-arms probes on the containers a restarted berthd adopts', async () => {
    const id = await run({ Test: ['CMD-SHELL', 'test -f /tmp/ok'], Interval: 200 * MS, Retries: 1 });
    await until('unhealthy', async () => (await health(id)).Status === 'unhealthy', 10_000);
    await daemon.kill9();
    restarted = await startDaemon({ root: daemon.root });
    expect((await health(id, restarted)).Status).toBe('unhealthy');
    expectOk(await restarted.cli(['exec', id, 'touch', '/tmp/ok']));
    await until('healthy after the restart', async () => (await health(id, restarted)).Status === 'healthy', 10_000);
  });
});
