/**
 * berthd as a process: start-up refusals (second daemon on a root, bad config), its socket (stale
 * file replaced, mode 0660, removed on SIGTERM), the API's shape (versions, 404, bad JSON), and
 * memory given back once idle after a burst of work.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, promises as fs, readFileSync, statSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pidAlive } from '../helpers/registry';
import { runBerthd, runCli, startDaemon, type RunningDaemon } from '../helpers/daemon';
import { isRoot, rootReason } from '../helpers/env';
import { busyboxArchive, makeTempDir } from '../helpers/fixtures';

/** True when something accepts connections on the unix socket. */
function socketAnswers(socket: string): Promise<boolean> {
  return new Promise((resolve) => {
    const conn = net.connect(socket);
    conn.once('connect', () => {
      conn.destroy();
      resolve(true);
    });
    conn.once('error', () => resolve(false));
  });
}

describe('berth CLI without a daemon', () => {
  it('says in one line that it cannot connect, names the socket, exits 1', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'bd-none-'));
    try {
      const socket = path.join(dir, 'nobody.sock');
      const res = await runCli(socket, ['images']);
      expect(res.code).toBe(1);
      expect(res.stdout).toBe('');
      const lines = res.stderr.trim().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(/cannot connect/i);
      expect(lines[0]).toContain(socket);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});

describe('berthd start-up', () => {
  it('refuses a second berthd on the same root, naming the root', async () => {
    const first = await startDaemon();
    const otherDir = await fs.mkdtemp(path.join(os.tmpdir(), 'bd-2nd-'));
    try {
      const secondSocket = path.join(otherDir, 'second.sock');
      const res = await runBerthd(['--root', first.root, '--socket', secondSocket]);
      expect(res.code).not.toBe(0);
      expect(res.stderr).toContain(first.root);
      expect(res.stderr).toMatch(/already/);
      expect(res.stderr).toContain(`pid ${first.pid}`);
      expect(existsSync(secondSocket)).toBe(false);
      // The first one is untouched.
      expect((await first.api('/_ping')).status).toBe(200);
    } finally {
      await first.stop();
      await fs.rm(otherDir, { recursive: true, force: true });
    }
  });

  it('exits non-zero on a bad config, naming the file and the key, with nothing listening', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'bd-cfg-'));
    try {
      const configFile = path.join(dir, 'berth.config.json');
      await fs.writeFile(configFile, JSON.stringify({ storage: { driver: 5 } }));
      const socket = path.join(dir, 'berth.sock');
      const root = path.join(dir, 'root');
      const res = await runBerthd(['--config', configFile, '--root', root, '--socket', socket]);
      expect(res.code).not.toBe(0);
      expect(res.stderr).toContain(configFile);
      expect(res.stderr).toContain('storage.driver');
      expect(existsSync(socket)).toBe(false);
      expect(await socketAnswers(socket)).toBe(false);
      // Nothing started: not even the root was created.
      expect(existsSync(root)).toBe(false);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });

  it('replaces a stale socket file, listens with mode 0660, and removes the socket on SIGTERM', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'bd-sock-'));
    const socket = path.join(dir, 'berth.sock');
    // A stale socket, as a crashed daemon leaves it: bound by a process killed before it unlinked it.
    spawnSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(socket)}, () => process.kill(process.pid, 'SIGKILL'))`]);
    expect(statSync(socket).isSocket()).toBe(true);
    expect(await socketAnswers(socket)).toBe(false);
    expect(existsSync(socket)).toBe(true);
    let daemon: RunningDaemon | undefined;
    try {
      daemon = await startDaemon({ socket });
      const st = statSync(socket);
      expect(st.isSocket()).toBe(true);
      expect(st.mode & 0o777).toBe(0o660);
      const pid = daemon.pid;
      const result = await daemon.stop('SIGTERM');
      expect(result).toEqual({ code: 0, signal: null });
      expect(existsSync(socket)).toBe(false);
      expect(pidAlive(pid)).toBe(false);
      expect(daemon.logs()).toContain('shutting down');
    } finally {
      await daemon?.stop();
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});

describe('berthd shutdown', () => {
  it('exits within its deadline when a plugin never finishes closing, and says so', async () => {
    const plugin = path.join(__dirname, '..', 'fixtures', 'hang-on-close-plugin.cjs');
    const daemon = await startDaemon({ config: { plugins: [plugin] } });
    try {
      process.kill(daemon.pid, 'SIGTERM');
      const deadline = new Promise<'hung'>((resolve) => setTimeout(() => resolve('hung'), 40_000).unref());
      expect(await Promise.race([daemon.exited, deadline])).toEqual({ code: 1, signal: null });
      expect(daemon.logs()).toContain('shutdown did not finish in time');
    } finally {
      await daemon.stop();
    }
  }, 60_000);
});

describe('berthd API', () => {
  let daemon: RunningDaemon;
  beforeAll(async () => {
    daemon = await startDaemon();
  });
  afterAll(async () => {
    await daemon?.stop();
  });

  it('answers /_ping with API-Version', async () => {
    const res = await daemon.api('/_ping');
    expect(res.status).toBe(200);
    expect(res.body).toBe('OK');
    expect(res.headers['api-version']).toMatch(/^1\.\d+$/);
    const head = await daemon.api('/_ping', { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers['api-version']).toBe(res.headers['api-version']);
  });

  it('reports ApiVersion and MinAPIVersion on /version', async () => {
    const res = await daemon.api('/version');
    expect(res.status).toBe(200);
    expect(res.json.ApiVersion).toMatch(/^1\.\d+$/);
    expect(res.json.MinAPIVersion).toMatch(/^1\.\d+$/);
    const [maj, min] = res.json.ApiVersion.split('.').map(Number);
    const [minMaj, minMin] = res.json.MinAPIVersion.split('.').map(Number);
    expect(maj * 1000 + min).toBeGreaterThanOrEqual(minMaj * 1000 + minMin);
    // The CLI shows the same.
    const cli = await daemon.cli(['version']);
    expect(cli.code).toBe(0);
    expect(cli.stdout).toContain(`API version: ${res.json.ApiVersion}`);
  });

  it('answers both /v1.43/images/json and /images/json', async () => {
    const versioned = await daemon.api('/v1.43/images/json');
    const plain = await daemon.api('/images/json');
    expect(versioned.status).toBe(200);
    expect(plain.status).toBe(200);
    expect(versioned.json).toEqual([]);
    expect(plain.json).toEqual([]);
    // A version berthd does not speak is refused, not silently served.
    const tooNew = await daemon.api('/v9.99/images/json');
    expect(tooNew.status).toBe(400);
    expect(tooNew.json.message).toContain('9.99');
  });

  it('answers an unknown route with a 404 JSON message', async () => {
    const res = await daemon.api('/v1.43/no/such/route');
    expect(res.status).toBe(404);
    expect(res.headers['content-type']).toContain('application/json');
    expect(res.json.message).toContain('/no/such/route');
  });

  it('keeps a keep-alive connection open after an error answer to a request without a body', async () => {
    const conn = net.connect(daemon.socket);
    let seen = '';
    conn.on('data', (c) => (seen += c.toString('latin1')));
    const closed = new Promise<void>((resolve) => conn.once('close', () => resolve()));
    conn.write('GET /v1.43/no/such/route HTTP/1.1\r\nHost: x\r\n\r\n');
    await expect.poll(() => seen).toMatch(/^HTTP\/1\.1 404/);
    conn.write('GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    await closed;
    expect(seen).toMatch(/^HTTP\/1\.1 404[^]*HTTP\/1\.1 200 OK[^]*\r\nOK\r\n/);
  });

  it('refuses a malformed image reference with 400 before any pull starts', async () => {
    const res = await daemon.api('/v1.43/images/create?fromImage=127.0.0.1:1/x&tag=bad%20tag', { method: 'POST' });
    expect(res.status).toBe(400);
    expect(res.json.message).toContain('bad tag');
    const cli = await daemon.cli(['pull', '127.0.0.1:1/Bad-Repo:latest']);
    expect(cli.code).toBe(1);
    expect(cli.stderr).toContain('Bad-Repo');
    expect(cli.stderr).toMatch(/invalid reference/);
  });

  it('answers a malformed JSON body with 400 and keeps serving', async () => {
    const res = await daemon.api('/v1.43/auth', {
      method: 'POST',
      body: '{"username": "a", ',
      headers: { 'Content-Type': 'application/json' },
    });
    expect(res.status).toBe(400);
    expect(res.json.message).toMatch(/invalid JSON/i);
    const ping = await daemon.api('/_ping');
    expect(ping.status).toBe(200);
    expect(pidAlive(daemon.pid)).toBe(true);
  });
});

describe.skipIf(!isRoot)(`berthd memory after a burst of work${isRoot ? '' : ` (skipped: ${rootReason})`}`, () => {
  const rssAnonKiB = (pid: number) => Number(/RssAnon:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  it('gives the memory back once idle: fifteen image loads, then RssAnon back to within 2 MiB of where it was', async () => {
    const work = await makeTempDir('berth-idle-');
    const archive = await fs.readFile(await busyboxArchive(work, 'idle/busybox:latest'));
    const daemon = await startDaemon();
    try {
      await sleep(5000); // start-up's own garbage collected first (the daemon collects when it goes quiet)
      const before = rssAnonKiB(daemon.pid);
      for (let i = 0; i < 15; i++) expect((await daemon.api('/images/load', { method: 'POST', body: archive })).status).toBe(200);
      const peak = rssAnonKiB(daemon.pid);
      let after = peak;
      for (const deadline = Date.now() + 15_000; Date.now() < deadline && after > before + 2048; await sleep(500)) after = rssAnonKiB(daemon.pid);
      console.log(`[figures] berthd RssAnon: ${(before / 1024).toFixed(1)} MiB idle, ${(peak / 1024).toFixed(1)} MiB after fifteen loads, ${(after / 1024).toFixed(1)} MiB once idle`);
      // Without the idle collection (V8 keeps its grown heap, malloc its arenas) it stayed ~15 MiB up.
      expect(after).toBeLessThan(before + 2048);
    } finally {
      await daemon.stop();
      await fs.rm(work, { recursive: true, force: true });
    }
  }, 60_000);
});
