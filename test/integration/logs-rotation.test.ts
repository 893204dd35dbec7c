/**
 * json-file rotation done by the real monitor (issue 12): max-size / max-file as dockerd applies
 * them, `logs` reading the rotated files in order (and `logs -f` across a rotation), the daemon's
 * default from config (`log-opts`), bad options refused with a 400 naming them, and `none`.
 */
import { existsSync, promises as fs, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBerthd, startDaemon, type RunningDaemon } from '../helpers/daemon';
import { isRoot, rootReason } from '../helpers/env';
import { makeTempDir, pushBusybox } from '../helpers/fixtures';
import { startRegistry, type RunningRegistry } from '../helpers/registry';

/** Decode Docker's multiplexed stream into its payload text. */
function demux(body: Buffer): string {
  let out = '';
  for (let i = 0; i + 8 <= body.length;) {
    const n = body.readUInt32BE(i + 4);
    out += body.subarray(i + 8, i + 8 + n).toString('utf8');
    i += 8 + n;
  }
  return out;
}

describe.skipIf(!isRoot)(`json-file log rotation (${isRoot ? 'root' : rootReason})`, () => {
  let registry: RunningRegistry;
  let daemon: RunningDaemon;
  let img: string;

  beforeAll(async () => {
    registry = await startRegistry();
    img = `${registry.host}/test/logs-rotation:latest`;
    await pushBusybox(registry.host, 'test/logs-rotation:latest');
    daemon = await startDaemon({ config: { 'log-driver': 'json-file', 'log-opts': { 'max-size': '300k', 'max-file': '2' } } });
    const pulled = await daemon.cli(['pull', '-q', img]);
    expect(pulled.code, pulled.stderr).toBe(0);
  });

  afterAll(async () => {
    if (daemon) {
      await daemon.removeAllContainers();
      await daemon.stop();
    }
    await registry?.stop();
  });

  const create = (cmd: string, logConfig?: object) =>
    daemon.api('/containers/create', { method: 'POST', body: { Image: img, Cmd: ['sh', '-c', cmd], HostConfig: logConfig ? { LogConfig: logConfig } : {} } });
  const runToEnd = async (cmd: string, logConfig?: object) => {
    const res = await create(cmd, logConfig);
    expect(res.status, res.body).toBe(201);
    const id = res.json.Id as string;
    expect((await daemon.api(`/containers/${id}/start`, { method: 'POST' })).status).toBe(204);
    expect((await daemon.api(`/containers/${id}/wait`, { method: 'POST' })).json.StatusCode).toBe(0);
    return id;
  };
  const logFiles = (id: string) => {
    const dir = path.join(daemon.root, 'containers', id);
    return readdirSync(dir)
      .filter((n) => n.startsWith('container.log'))
      .sort()
      .map((n) => ({ name: n, size: statSync(path.join(dir, n)).size }));
  };
  const logs = async (id: string, query: string) => {
    const chunks: Buffer[] = [];
    await new Promise<void>((resolve, reject) => {
      import('node:http').then(({ default: http }) => {
        http
          .get({ socketPath: daemon.socket, path: `/containers/${id}/logs?stdout=1&stderr=1&${query}` }, (res) => {
            res.on('data', (c) => chunks.push(c));
            res.on('end', resolve);
            res.on('error', reject);
          })
          .on('error', reject);
      }, reject);
    });
    return demux(Buffer.concat(chunks));
  };

  it('max-size=1m max-file=2: ~20 MB written leaves two files of at most 1 MB; logs reads both in order', async () => {
    const id = await runToEnd('busybox seq 1 300000', { Type: 'json-file', Config: { 'max-size': '1m', 'max-file': '2' } });
    const files = logFiles(id);
    expect(files.map((f) => f.name)).toEqual(['container.log', 'container.log.1']);
    for (const f of files) expect(f.size).toBeLessThanOrEqual(1_000_000);
    expect(await logs(id, 'tail=3')).toBe('299998\n299999\n300000\n');
    const all = (await logs(id, 'tail=all')).trim().split('\n').map(Number);
    expect(all.at(-1)).toBe(300000);
    expect(all.length).toBeGreaterThan(10000);
    // Contiguous: the rotated file comes first, then the current one, nothing lost between them.
    expect(all.every((n, i) => i === 0 || n === all[i - 1] + 1)).toBe(true);
  }, 120_000);

  it('max-file=1 truncates in place', async () => {
    const id = await runToEnd('busybox seq 1 100000', { Type: 'json-file', Config: { 'max-size': '500k', 'max-file': '1' } });
    const files = logFiles(id);
    expect(files.map((f) => f.name)).toEqual(['container.log']);
    expect(files[0].size).toBeLessThanOrEqual(500_000);
    expect(await logs(id, 'tail=2')).toBe('99999\n100000\n');
  }, 120_000);

  it('the daemon default (log-opts) is applied and shown in inspect; a container option wins over it', async () => {
    const id = await runToEnd('busybox seq 1 50000');
    expect((await daemon.api(`/containers/${id}/json`)).json.HostConfig.LogConfig).toEqual({ Type: 'json-file', Config: { 'max-size': '300k', 'max-file': '2' } });
    const files = logFiles(id);
    expect(files.map((f) => f.name)).toEqual(['container.log', 'container.log.1']);
    for (const f of files) expect(f.size).toBeLessThanOrEqual(300_000);
    const own = await create('true', { Config: { 'max-file': '3' } });
    expect((await daemon.api(`/containers/${own.json.Id}/json`)).json.HostConfig.LogConfig).toEqual({ Type: 'json-file', Config: { 'max-size': '300k', 'max-file': '3' } });
  }, 120_000);

  it('logs -f follows across rotations without losing a line', async () => {
    const res = await create('sleep 1; for i in $(busybox seq 1 3000); do echo follow-$i; [ $((i % 100)) = 0 ] && sleep 0.3; done', { Config: { 'max-size': '20k', 'max-file': '2' } });
    const id = res.json.Id as string;
    expect((await daemon.api(`/containers/${id}/start`, { method: 'POST' })).status).toBe(204);
    const followed = (await logs(id, 'follow=1')).trim().split('\n');
    expect(followed.length).toBe(3000);
    expect(followed.every((l, i) => l === `follow-${i + 1}`)).toBe(true);
    expect(logFiles(id).length).toBe(2);
  }, 120_000);

  it('bad log options are refused with a 400 naming the option, and nothing is created', async () => {
    const before = (await daemon.api('/containers/json?all=1')).json.length;
    for (const [cfg, message] of [
      [{ Config: { 'max-size': 'lots' } }, /max-size.*invalid size 'lots'/],
      [{ Config: { 'max-size': '0' } }, /max-size must be a positive number/],
      [{ Config: { 'max-file': '0' } }, /max-file cannot be less than 1/],
      [{ Config: { 'max-file': 'two' } }, /max-file.*'two'/],
      [{ Type: 'json-file', Config: { mode: 'non-blocking' } }, /unknown log opt 'mode' for json-file log driver/],
      [{ Type: 'syslog', Config: {} }, /no log driver named 'syslog'/],
      [{ Type: 'none', Config: { 'max-size': '1m' } }, /none log driver takes no options/],
    ] as const) {
      const r = await create('true', cfg);
      expect(r.status, JSON.stringify(cfg)).toBe(400);
      expect(r.json.message).toMatch(message);
    }
    expect((await daemon.api('/containers/json?all=1')).json.length).toBe(before);
  }, 60_000);

  it('the none driver writes no log, and logs says it cannot read it', async () => {
    const id = await runToEnd('echo nowhere', { Type: 'none' });
    expect(existsSync(path.join(daemon.root, 'containers', id, 'container.log'))).toBe(false);
    const r = await daemon.api(`/containers/${id}/logs?stdout=1`);
    expect(r.status).toBe(501);
    expect(r.json.message).toBe('configured logging driver does not support reading');
    expect((await daemon.api(`/containers/${id}/json`)).json.HostConfig.LogConfig).toEqual({ Type: 'none', Config: {} });
  }, 60_000);

  it('a bad daemon default stops berthd with the key named', async () => {
    const dir = await makeTempDir('berth-logcfg-');
    try {
      const file = path.join(dir, 'berth.config.json');
      await fs.writeFile(file, JSON.stringify({ 'log-opts': { 'max-file': '0' } }));
      const res = await runBerthd(['--config', file, '--root', path.join(dir, 'root'), '--socket', path.join(dir, 's.sock')]);
      expect(res.code).not.toBe(0);
      expect(res.stdout + res.stderr).toMatch(/log-opts\.max-file: max-file cannot be less than 1/);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
