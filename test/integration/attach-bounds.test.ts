/**
 * Attach and log streams stay bounded (issue 12), against a real berthd and real monitors: a
 * client that never reads neither grows berthd nor stalls the container (its log keeps every
 * byte), forty clients attached to one container all get its output, one past the monitor's
 * limit is refused before its 101, and `logs?follow=1` sends its headers before any output.
 */
import { createReadStream, readFileSync } from 'node:fs';
import type net from 'node:net';
import path from 'node:path';
import readline from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rawConnect, startDaemon, type RunningDaemon } from '../helpers/daemon';
import { isRoot, rootReason, until } from '../helpers/env';
import { pushBusybox } from '../helpers/fixtures';
import { startRegistry, type RunningRegistry } from '../helpers/registry';

const MiB = 1024 * 1024;
/** What the container writes while nobody reads: far more than berthd may hold. */
const FLOOD_BYTES = 600_000_000;
/** berthd's growth allowed meanwhile; before issue 12 it buffered everything (~150 MB/s). */
const MAX_GROWTH_MIB = 300;

function vmRssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) / 1024;
}

const attachRequest = (id: string) => `POST /containers/${id}/attach?stream=1&stdout=1&stderr=1 HTTP/1.1\r\nHost: berth\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n`;

describe.skipIf(!isRoot)(`attach and log streams stay bounded (${isRoot ? 'root' : rootReason})`, () => {
  let registry: RunningRegistry;
  let daemon: RunningDaemon;
  let img: string;
  const sockets: net.Socket[] = [];

  beforeAll(async () => {
    registry = await startRegistry();
    img = `${registry.host}/test/attach-bounds:latest`;
    await pushBusybox(registry.host, 'test/attach-bounds:latest');
    daemon = await startDaemon();
    const pulled = await daemon.cli(['pull', '-q', img]);
    expect(pulled.code, pulled.stderr).toBe(0);
  });

  afterAll(async () => {
    for (const s of sockets) s.destroy();
    if (daemon) {
      await daemon.removeAllContainers();
      await daemon.stop();
    }
    await registry?.stop();
  });

  const create = async (cmd: string[]) => {
    const res = await daemon.api('/containers/create', { method: 'POST', body: { Image: img, Cmd: cmd } });
    expect(res.status, res.body).toBe(201);
    return res.json.Id as string;
  };
  const start = async (id: string) => expect((await daemon.api(`/containers/${id}/start`, { method: 'POST' })).status).toBe(204);

  it('a client that never reads: berthd stays flat, the container runs to the end, the log has every byte', async () => {
    // 1280-byte lines, as fast as the container can write them.
    const id = await create(['sh', '-c', `l=0123456789; for i in 1 2 3 4 5 6 7; do l=$l$l; done; busybox yes "$l" | head -c ${FLOOD_BYTES}; echo; echo flood-done`]);
    const { sock } = await rawConnect(daemon.socket, attachRequest(id), /^HTTP\/1.1 101/);
    sockets.push(sock);
    sock.pause(); // never read again
    const before = vmRssMiB(daemon.pid);
    await start(id);
    const stateDir = path.join(daemon.root, 'containers', id);
    const monitorPid = (await until('runtime.json', () => JSON.parse(readFileSync(path.join(stateDir, 'runtime.json'), 'utf8')))).monitorPid as number;
    let peak = before;
    let monitorPeak = 0;
    await until(
      'the flood to end with the client still not reading',
      async () => {
        peak = Math.max(peak, vmRssMiB(daemon.pid));
        try {
          monitorPeak = Math.max(monitorPeak, vmRssMiB(monitorPid));
        } catch {
          /* the monitor has gone: the container exited */
        }
        if (peak - before > MAX_GROWTH_MIB) throw new Error(`berthd grew ${Math.round(peak - before)} MiB`);
        return !(await daemon.api(`/containers/${id}/json`)).json.State.Running;
      },
      240_000,
      () => ({ berthdGrowthMiB: Math.round(peak - before), monitorPeakMiB: Math.round(monitorPeak) }),
    ).catch(async (err) => {
      await daemon.api(`/containers/${id}/kill`, { method: 'POST' });
      throw err;
    });
    console.log(`berthd RSS ${before.toFixed(0)} MiB -> peak ${peak.toFixed(0)} MiB; monitor peak ${monitorPeak.toFixed(1)} MiB while ${FLOOD_BYTES / 1e6} MB went unread`);
    expect(peak - before).toBeLessThan(MAX_GROWTH_MIB);
    expect(monitorPeak).toBeLessThan(64);

    // Everything reached the log, in order, however slow the attached client was.
    let bytes = 0;
    let last = '';
    const lines = readline.createInterface({ input: createReadStream(path.join(stateDir, 'container.log')), crlfDelay: Infinity });
    for await (const line of lines) {
      const entry = JSON.parse(line) as { log: string };
      if (entry.log !== 'flood-done\n') bytes += Buffer.byteLength(entry.log);
      last = entry.log;
    }
    expect(bytes).toBe(FLOOD_BYTES + 1);
    expect(last).toBe('flood-done\n');
  }, 300_000);

  it('forty attached clients all receive the output', async () => {
    const id = await create(['sh', '-c', 'while :; do echo attach-marker; sleep 0.3; done']);
    await start(id);
    const attached = await Promise.all(Array.from({ length: 40 }, () => rawConnect(daemon.socket, attachRequest(id), /attach-marker/, 60_000)));
    for (const { sock, seen } of attached) {
      sockets.push(sock);
      expect(seen).toMatch(/^HTTP\/1.1 101/);
    }
    for (const { sock } of attached) sock.destroy();
    await daemon.api(`/containers/${id}?force=1`, { method: 'DELETE' });
  }, 120_000);

  it('past 1024 clients the next attach is refused with the reason, before any 101', async () => {
    const id = await create(['sh', '-c', 'while :; do echo cap-marker; sleep 0.3; done']);
    await start(id);
    const held: net.Socket[] = [];
    try {
      for (let batch = 0; batch < 1024 / 64; batch++) {
        const got = await Promise.all(Array.from({ length: 64 }, () => rawConnect(daemon.socket, attachRequest(id), /^HTTP\/1.1 101/, 60_000)));
        for (const { sock } of got) held.push(sock);
      }
      const refused = await rawConnect(daemon.socket, attachRequest(id), /^HTTP\/1.1 101|attached clients[^]*\}/, 20_000);
      refused.sock.destroy();
      expect(refused.seen).toMatch(/^HTTP\/1.1 503/);
      expect(refused.seen).toMatch(/already has 1024 attached clients/);
      // One leaves, and the next one is served again.
      held.pop()!.destroy();
      const again = await until(
        'a freed place',
        async () => {
          const r = await rawConnect(daemon.socket, attachRequest(id), /cap-marker|attached clients[^]*\}/, 20_000);
          r.sock.destroy();
          return /cap-marker/.test(r.seen) && r;
        },
        30_000,
      );
      expect(again.seen).toMatch(/^HTTP\/1.1 101/);
    } finally {
      for (const s of held) s.destroy();
      await daemon.api(`/containers/${id}?force=1`, { method: 'DELETE' });
    }
  }, 300_000);

  it('logs?follow=1 sends the 200 and its headers before the container writes anything', async () => {
    const id = await create(['sh', '-c', 'sleep 6; echo late-line']);
    await start(id);
    const startedAt = Date.now();
    const { sock, seen } = await rawConnect(daemon.socket, `GET /containers/${id}/logs?stdout=1&stderr=1&follow=1 HTTP/1.1\r\nHost: berth\r\n\r\n`, /\r\n\r\n/, 4000);
    sockets.push(sock);
    expect(Date.now() - startedAt).toBeLessThan(4000);
    expect(seen).toMatch(/^HTTP\/1.1 200/);
    expect(seen).not.toContain('late-line');
    sock.destroy();
    await daemon.api(`/containers/${id}?force=1`, { method: 'DELETE' });
  }, 60_000);
});
