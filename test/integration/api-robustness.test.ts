/**
 * berthd's API under hostile or careless clients: malformed and mistyped JSON, huge bodies, bad
 * query parameters, clients that vanish mid-stream, bursts of concurrent requests and a seeded
 * fuzz of the JSON endpoints. Every answer must be a clear 2xx/4xx (never a 5xx caused by the
 * input's shape), the daemon must stay up, and nothing may leak (fds of the daemon compared
 * before and after). Also prints list latency with 100 containers and the idle RSS of berthd.
 *
 * BERTH_FUZZ_SECONDS sets the fuzz duration (default 15), BERTH_FUZZ_SEED its seed.
 */
import { readdirSync, readFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import * as tar from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fdCount, fdsSettle, mountsUnder, rawConnect, startDaemon, type RunningDaemon } from '../helpers/daemon';
import { isRoot, rootReason, seeded } from '../helpers/env';
import { pushBusybox } from '../helpers/fixtures';
import { startRegistry, type RunningRegistry } from '../helpers/registry';

const FUZZ_SECONDS = Number(process.env.BERTH_FUZZ_SECONDS ?? 15);
const FUZZ_SEED = Number(process.env.BERTH_FUZZ_SEED ?? 0x5eed);

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  json: any;
}

/** One request on its own connection (no keep-alive: the fd counts stay meaningful). */
function request(socket: string, path: string, init: { method?: string; body?: string | Buffer; headers?: Record<string, string>; timeoutMs?: number } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { ...init.headers };
    if (init.body !== undefined) {
      headers['Content-Type'] ??= 'application/json';
      headers['Content-Length'] = String(Buffer.byteLength(init.body));
    }
    const req = http.request({ socketPath: socket, path, method: init.method ?? 'GET', headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        let json: unknown;
        try {
          json = body ? JSON.parse(body) : undefined;
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json });
      });
    });
    req.setTimeout(init.timeoutMs ?? 30_000, () => req.destroy(new Error(`${init.method ?? 'GET'} ${path}: no answer in time`)));
    req.on('error', reject);
    req.end(init.body);
  });
}

const post = (socket: string, path: string, body?: unknown) => request(socket, path, { method: 'POST', body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body) });

function rssKiB(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : 0;
}

type TarEntry = { name: string; type?: 'file' | 'directory' | 'symlink' | 'link'; linkname?: string; body?: string; mode?: number };

/** A tar archive in memory, entries in the order given. */
async function makeTar(entries: TarEntry[]): Promise<Buffer> {
  const pack = tar.pack();
  for (const e of entries) {
    await new Promise<void>((resolve, reject) =>
      pack.entry(
        { name: e.name, type: e.type ?? 'file', linkname: e.linkname, mode: e.mode ?? (e.type === 'directory' ? 0o755 : 0o644) },
        e.type && e.type !== 'file' ? undefined : (e.body ?? ''),
        (err) => (err ? reject(err) : resolve()),
      ),
    );
  }
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** Entries of a tar archive: name -> body (files) or '->target' (links) or '/' (directories). */
async function readTar(buf: Buffer): Promise<Record<string, string>> {
  const extract = tar.extract();
  const out: Record<string, string> = {};
  const done = (async () => {
    for await (const e of extract) {
      const chunks: Buffer[] = [];
      for await (const c of e) chunks.push(c as Buffer);
      const h = e.header;
      out[h.name] = h.type === 'directory' ? '/' : h.type === 'symlink' ? `->${h.linkname}` : Buffer.concat(chunks).toString('utf8');
    }
  })();
  extract.end(buf);
  await done;
  return out;
}

/** Mounts below `root` that belong to container `id`, once the daemon's async unmounts are done. */
async function mountsSettle(root: string, id: string, timeoutMs = 3000): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  let left = mountsUnder(root).filter((m) => m.includes(id));
  while (left.length && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    left = mountsUnder(root).filter((m) => m.includes(id));
  }
  return left;
}

const CREATE_FIELDS = [
  'Hostname',
  'Domainname',
  'User',
  'AttachStdin',
  'AttachStdout',
  'AttachStderr',
  'ExposedPorts',
  'Tty',
  'OpenStdin',
  'StdinOnce',
  'Env',
  'Cmd',
  'Healthcheck',
  'ArgsEscaped',
  'Image',
  'Volumes',
  'WorkingDir',
  'Entrypoint',
  'NetworkDisabled',
  'MacAddress',
  'OnBuild',
  'Labels',
  'StopSignal',
  'StopTimeout',
  'Shell',
  'HostConfig',
  'NetworkingConfig',
];
const HOST_FIELDS = [
  'Binds',
  'NetworkMode',
  'PortBindings',
  'RestartPolicy',
  'AutoRemove',
  'CapAdd',
  'CapDrop',
  'Dns',
  'ExtraHosts',
  'GroupAdd',
  'IpcMode',
  'PidMode',
  'Privileged',
  'ReadonlyRootfs',
  'SecurityOpt',
  'Tmpfs',
  'UTSMode',
  'UsernsMode',
  'ShmSize',
  'Sysctls',
  'Runtime',
  'Mounts',
  'Memory',
  'MemorySwap',
  'NanoCpus',
  'CpuShares',
  'CpuQuota',
  'CpuPeriod',
  'CpusetCpus',
  'PidsLimit',
  'Ulimits',
  'Devices',
  'Init',
  'LogConfig',
  'OomKillDisable',
  'BlkioWeight',
  'MaskedPaths',
  'ReadonlyPaths',
  'ConsoleSize',
];
const EXEC_FIELDS = ['Cmd', 'Env', 'User', 'WorkingDir', 'Tty', 'Privileged', 'AttachStdin', 'AttachStdout', 'AttachStderr', 'Detach', 'DetachKeys', 'ConsoleSize'];

/** Random JSON values, weighted towards the shapes that break naive code. */
function jsonGen(rand: () => number) {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)];
  const strings = [
    '',
    'a',
    'x'.repeat(300),
    '/',
    '../../etc/passwd',
    'sh',
    'true',
    'A=B',
    '=',
    '🙂',
    '\u0000nul',
    'null',
    '0',
    '-1',
    'none',
    'host',
    'default',
    '/tmp:/tmp',
    'SIGKILL',
    'root',
    '1000:1000',
  ];
  const value = (depth: number): unknown => {
    const r = rand();
    if (r < 0.12) return null;
    if (r < 0.24) return rand() < 0.5;
    if (r < 0.4) return pick([0, 1, -1, 5, 1.5, 2 ** 53, -(2 ** 63), 1e308, 65536, 1024 * 1024 * 1024]);
    if (r < 0.6) return pick(strings);
    if (r < 0.8 && depth < 3) return Array.from({ length: Math.floor(rand() * 4) }, () => value(depth + 1));
    if (depth < 3) {
      const o: Record<string, unknown> = {};
      for (let i = Math.floor(rand() * 4); i > 0; i--) o[pick([...strings, 'Name', 'Type', 'Source', 'Target', 'Hard', 'Soft', 'Path'])] = value(depth + 1);
      return o;
    }
    return pick(strings);
  };
  return { value, pick };
}

describe.skipIf(!isRoot)(`API robustness (${isRoot ? 'root' : rootReason})`, () => {
  let registry: RunningRegistry;
  let daemon: RunningDaemon;
  let img: string;
  let bigImg: string;
  let running: string;
  let stopped: string;
  let baselineFds = 0;
  const s = () => daemon.socket;

  beforeAll(async () => {
    registry = await startRegistry();
    img = `${registry.host}/test/busybox:latest`;
    bigImg = `${registry.host}/test/layered`;
    await pushBusybox(registry.host, 'test/busybox:latest', { cmd: ['sh'] });
    for (const tag of ['a', 'b', 'c']) await pushBusybox(registry.host, `test/layered:${tag}`, { layers: 4, extraFiles: { 'tag.txt': tag } });
    daemon = await startDaemon();
    const pulled = await post(s(), `/images/create?fromImage=${encodeURIComponent(img)}`);
    expect(pulled.status).toBe(200);
    expect(pulled.body).not.toMatch(/errorDetail/);
    running = (await post(s(), '/containers/create?name=rb-running', { Image: img, Cmd: ['sh', '-c', 'while :; do echo tick; sleep 0.2; done'] })).json.Id;
    expect((await post(s(), `/containers/${running}/start`)).status).toBe(204);
    stopped = (await post(s(), '/containers/create?name=rb-stopped', { Image: img, Cmd: ['true'] })).json.Id;
    // Warm up every code path once before counting fds (lazily opened files, plugin handles).
    await request(s(), '/containers/json?all=1');
    await request(s(), `/containers/${running}/json`);
    await new Promise((r) => setTimeout(r, 500));
    baselineFds = fdCount(daemon.pid);
  });

  afterAll(async () => {
    if (daemon) {
      const list = await request(s(), '/containers/json?all=1');
      for (const c of list.json ?? []) await request(s(), `/containers/${c.Id}?force=1`, { method: 'DELETE' });
      await daemon.stop();
    }
    await registry?.stop();
  });

  const alive = async () => {
    const ping = await request(s(), '/_ping');
    expect(ping.status).toBe(200);
    expect(ping.body).toBe('OK');
  };

  describe('malformed input', () => {
    it('malformed JSON is a 400 that says so, on every JSON endpoint', async () => {
      for (const path of ['/containers/create', `/containers/${running}/exec`, `/commit?container=${stopped}`, `/containers/${stopped}/update`, '/auth']) {
        for (const body of ['{', '{"Image": }', 'nope', '{"a":1}}', '\u0000']) {
          const res = await post(s(), path, body);
          expect(res.status, `${path} ${JSON.stringify(body)}`).toBe(400);
          expect(res.json.message).toMatch(/invalid JSON body/);
        }
      }
      await alive();
    });

    it('unknown fields are ignored, as dockerd ignores them', async () => {
      const res = await post(s(), '/containers/create', { Image: img, Cmd: ['true'], NoSuchField: { deep: [1, 2] }, HostConfig: { Bogus: true } });
      expect(res.status).toBe(201);
      expect((await request(s(), `/containers/${res.json.Id}?force=1`, { method: 'DELETE' })).status).toBe(204);
    });

    it('values of the wrong type are a 400 naming the field', async () => {
      const cases: [unknown, RegExp][] = [
        [{ Image: img, Cmd: 5 }, /Cmd: expected an array of strings or a string, got number \(5\)/],
        [{ Image: 5 }, /Image: expected a string, got number/],
        [{ Image: img, Env: 'A=B' }, /Env: expected an array of strings, got string/],
        [{ Image: img, Env: ['A=B', 7] }, /Env\[1\]: expected a string, got number/],
        [{ Image: img, Labels: { a: 1 } }, /Labels\["a"\]: expected a string, got number/],
        [{ Image: img, Tty: 'yes' }, /Tty: expected a boolean, got string/],
        [{ Image: img, HostConfig: { Memory: '1g' } }, /HostConfig\.Memory: expected an integer, got string/],
        [{ Image: img, HostConfig: { Memory: 1.5 } }, /HostConfig\.Memory: expected an integer, got number \(1\.5\)/],
        [{ Image: img, HostConfig: { Binds: '/a:/b' } }, /HostConfig\.Binds: expected an array of strings/],
        [{ Image: img, HostConfig: { RestartPolicy: 'always' } }, /HostConfig\.RestartPolicy: expected an object/],
        [{ Image: img, HostConfig: { Ulimits: [{ Name: 'nofile', Soft: 'x' }] } }, /HostConfig\.Ulimits\[0\]\.Soft: expected an integer/],
        [{ Image: img, HostConfig: [] }, /HostConfig: expected an object, got array/],
        [[], /request body must be a JSON object, got array/],
        ['"just a string"', /request body must be a JSON object, got string/],
        [42, /request body must be a JSON object, got number/],
      ];
      for (const [body, message] of cases) {
        const res = await post(s(), '/containers/create', typeof body === 'string' ? body : JSON.stringify(body));
        expect(res.status, JSON.stringify(body)).toBe(400);
        expect(res.json.message, JSON.stringify(body)).toMatch(message);
      }
      const exec = await post(s(), `/containers/${running}/exec`, { Cmd: 5 });
      expect(exec.status).toBe(400);
      expect(exec.json.message).toMatch(/Cmd: expected/);
      const commit = await post(s(), `/commit?container=${stopped}`, { Env: 'x' });
      expect(commit.status).toBe(400);
      expect(commit.json.message).toMatch(/Env: expected/);
      const update = await post(s(), `/containers/${stopped}/update`, { Memory: 'lots' });
      expect(update.status).toBe(400);
      expect(update.json.message).toMatch(/Memory: expected an integer/);
      await alive();
    });

    it('a StrSlice given as one string is taken as a one-element command, as dockerd does', async () => {
      const res = await post(s(), '/containers/create', { Image: img, Cmd: 'true', Entrypoint: null });
      expect(res.status).toBe(201);
      const info = await request(s(), `/containers/${res.json.Id}/json`);
      expect(info.json.Path).toBe('true');
      expect(info.json.Args).toEqual([]);
      await request(s(), `/containers/${res.json.Id}?force=1`, { method: 'DELETE' });
    });

    it('a body over the limit is refused with 413 and the daemon keeps answering', async () => {
      // Refused from its Content-Length, before a byte of it is read: the client that sent the
      // headers alone reads the answer (one still writing may see the close first, api-bounds).
      const { sock, seen } = await rawConnect(s(), `POST /containers/create HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${5 * 1024 * 1024}\r\n\r\n`, /\r\n\r\n[^]*\}/);
      sock.destroy();
      expect(seen).toMatch(/^HTTP\/1\.1 413/);
      expect(seen).toMatch(/larger than/);
      await alive();
    });

    it('bad query parameters and paths get 4xx answers', async () => {
      const cases: [string, string, number][] = [
        ['GET', '/containers/json?filters=notjson', 400],
        ['GET', '/containers/json?filters=[1,2]', 400],
        ['GET', '/containers/json?limit=abc', 400],
        ['GET', '/images/json?filters={', 400],
        ['GET', '/events?filters=nope', 400],
        ['GET', '/events?since=yesterday', 400],
        ['POST', `/containers/${running}/stop?t=soon`, 400],
        ['POST', `/containers/${running}/restart?t=x`, 400],
        ['POST', `/containers/${running}/wait?condition=bogus`, 400],
        ['POST', `/containers/${running}/resize?h=tall&w=80`, 400],
        ['GET', `/containers/${running}/logs?stdout=1&tail=abc&since=x`, 400],
        ['POST', '/images/create', 400],
        ['POST', '/images/create?fromImage=UPPER/Case:tag', 400],
        ['POST', '/images/create?fromImage=a@sha256:123', 400],
        ['GET', `/containers/${running}/archive`, 400],
        ['GET', `/containers/${running}/archive?path=/no/such/file`, 404],
        ['PUT', `/containers/${running}/archive?path=/etc/passwd`, 400],
        ['GET', '/containers/%ZZ/json', 400],
        ['GET', '/containers/no-such-container/json', 404],
        ['GET', '/v9.99/_ping', 400],
        ['GET', '/v1.12/containers/json', 400],
        ['GET', '/no/such/route', 404],
        ['DELETE', '/_ping', 405],
        ['POST', '/containers/create?name=bad/name', 400],
      ];
      for (const [method, path, status] of cases) {
        const res = await request(s(), path, { method, body: method === 'PUT' ? '' : undefined });
        expect(res.status, `${method} ${path}: ${res.body}`).toBe(status);
        if (method !== 'HEAD') expect(typeof res.json?.message, `${method} ${path}`).toBe('string');
      }
      await alive();
    });

    it('answers on every supported API version and unversioned', async () => {
      for (let minor = 24; minor <= 43; minor++) {
        const res = await request(s(), `/v1.${minor}/containers/json`);
        expect(res.status, `v1.${minor}`).toBe(200);
      }
      const head = await request(s(), '/_ping', { method: 'HEAD' });
      expect(head.status).toBe(200);
      expect(head.headers['api-version']).toBe('1.43');
      expect(head.body).toBe('');
      const version = await request(s(), '/version');
      expect(version.json).toMatchObject({ ApiVersion: '1.43', MinAPIVersion: '1.24', Os: 'linux' });
      expect(version.json.Components[0].Details).toMatchObject({ ApiVersion: '1.43', MinAPIVersion: '1.24', Os: 'linux' });
    });
  });

  describe('docker cp archives (PUT/GET/HEAD /containers/{id}/archive)', () => {
    const put = (id: string, path: string, body: Buffer, query = '') =>
      request(s(), `/containers/${id}/archive?path=${encodeURIComponent(path)}${query}`, { method: 'PUT', body, headers: { 'Content-Type': 'application/x-tar' } });
    const get = (id: string, path: string) =>
      new Promise<{ status: number; stat: any; tar: Buffer; json: any }>((resolve, reject) => {
        http
          .get({ socketPath: s(), path: `/containers/${id}/archive?path=${encodeURIComponent(path)}`, agent: false }, (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c) => chunks.push(c));
            res.on('end', () => {
              const header = res.headers['x-docker-container-path-stat'];
              const body = Buffer.concat(chunks);
              resolve({
                status: res.statusCode ?? 0,
                stat: typeof header === 'string' ? JSON.parse(Buffer.from(header, 'base64').toString('utf8')) : undefined,
                tar: body,
                json: res.statusCode === 200 ? undefined : JSON.parse(body.toString('utf8')),
              });
            });
          })
          .on('error', reject);
      });

    it('round-trips files, directories and links, with the stat header in Go FileMode bits', async () => {
      const archive = await makeTar([
        { name: 'cp-dir/', type: 'directory', mode: 0o750 },
        { name: 'cp-dir/a.txt', body: 'alpha\n', mode: 0o600 },
        { name: 'cp-dir/link', type: 'symlink', linkname: 'a.txt' },
        { name: 'cp-dir/hard', type: 'link', linkname: 'cp-dir/a.txt' },
      ]);
      expect((await put(stopped, '/tmp', archive)).status).toBe(200);
      const dir = await get(stopped, '/tmp/cp-dir');
      expect(dir.status).toBe(200);
      expect(dir.stat).toMatchObject({ name: 'cp-dir', linkTarget: '' });
      expect(dir.stat.mode).toBe(2 ** 31 + 0o750); // os.ModeDir | 0750
      const entries = await readTar(dir.tar);
      expect(entries['cp-dir']).toBe('/');
      expect(entries['cp-dir/a.txt']).toBe('alpha\n');
      expect(entries['cp-dir/link']).toBe('->a.txt');
      expect(Object.keys(entries)).toContain('cp-dir/hard');
      const head = await request(s(), `/containers/${stopped}/archive?path=/tmp/cp-dir/link`, { method: 'HEAD' });
      const stat = JSON.parse(Buffer.from(String(head.headers['x-docker-container-path-stat']), 'base64').toString('utf8'));
      expect(stat).toMatchObject({ name: 'link', linkTarget: '/tmp/cp-dir/a.txt' });
      expect(stat.mode & (2 ** 27)).toBeTruthy(); // os.ModeSymlink
      // `path/.` names the directory's contents, as docker cp uses it.
      const contents = await readTar((await get(stopped, '/tmp/cp-dir/.')).tar);
      expect(contents['./a.txt']).toBe('alpha\n');
      // The rootfs of the stopped container is not left mounted by any of this.
      expect(await mountsSettle(daemon.root, stopped)).toEqual([]);
    });

    it('never writes outside the container, whatever the archive says', async () => {
      const hostMarker = `/etc/berth-escape-${process.pid}.txt`;
      // An absolute symlink, then a file "through" it: lands in the container's /etc.
      const viaLink = await makeTar([
        { name: 'to-etc', type: 'symlink', linkname: '/etc' },
        { name: `to-etc/berth-escape-${process.pid}.txt`, body: 'inside\n' },
      ]);
      expect((await put(stopped, '/', viaLink)).status).toBe(200);
      expect(readdirSync('/etc')).not.toContain(`berth-escape-${process.pid}.txt`);
      expect(await readTar((await get(stopped, hostMarker)).tar)).toEqual({ [`berth-escape-${process.pid}.txt`]: 'inside\n' });
      // A relative symlink that climbs far above the root stays at the container's root.
      const climb = await makeTar([
        { name: 'up', type: 'symlink', linkname: '../../../../../../../../..' },
        { name: `up/berth-climb-${process.pid}.txt`, body: 'root of the container\n' },
      ]);
      expect((await put(stopped, '/tmp', climb)).status).toBe(200);
      expect((await get(stopped, `/berth-climb-${process.pid}.txt`)).status).toBe(200);
      // Names and hardlinks that leave the destination are refused outright.
      for (const [entries, message] of [
        [[{ name: '../escape.txt', body: 'x' }], /points outside the destination/],
        [[{ name: 'a/../../escape.txt', body: 'x' }], /points outside the destination/],
        [[{ name: 'hl', type: 'link', linkname: '../../../../etc/shadow' }], /points outside the destination/],
        [[{ name: '.wh.passwd', body: '' }], /reserved for layer whiteouts/],
      ] as [TarEntry[], RegExp][]) {
        const res = await put(stopped, '/tmp', await makeTar(entries));
        expect(res.status, JSON.stringify(entries)).toBe(400);
        expect(res.json.message).toMatch(message);
      }
      // Garbage and truncated archives.
      const garbage = await put(stopped, '/tmp', Buffer.from('this is not a tar archive at all'.repeat(40)));
      expect(garbage.status).toBe(400);
      const whole = await makeTar([{ name: 'big.txt', body: 'y'.repeat(10_000) }]);
      const truncated = await put(stopped, '/tmp', whole.subarray(0, 3000));
      expect(truncated.status).toBe(400);
      expect(truncated.json.message).toMatch(/truncated|end of/i);
      // The destination itself resolves inside the container too.
      const viaDest = await put(stopped, '/to-etc', await makeTar([{ name: `dest-${process.pid}.txt`, body: 'z' }]));
      expect(viaDest.status).toBe(200);
      expect(readdirSync('/etc')).not.toContain(`dest-${process.pid}.txt`);
      expect((await get(stopped, `/etc/dest-${process.pid}.txt`)).status).toBe(200);
      expect(await mountsSettle(daemon.root, stopped)).toEqual([]);
    });

    it('noOverwriteDirNonDir refuses to swap a directory for a file and the reverse', async () => {
      const fileOverDir = await put(stopped, '/', await makeTar([{ name: 'etc', body: 'not a dir' }]), '&noOverwriteDirNonDir=true');
      expect(fileOverDir.status).toBe(400);
      expect(fileOverDir.json.message).toMatch(/cannot overwrite directory "\/etc" with non-directory "etc"/);
      const dirOverFile = await put(stopped, '/etc', await makeTar([{ name: 'passwd/', type: 'directory' }]), '&noOverwriteDirNonDir=1');
      expect(dirOverFile.status).toBe(400);
      expect(dirOverFile.json.message).toMatch(/cannot overwrite non-directory "\/etc\/passwd" with directory/);
      // Both are intact.
      expect((await get(stopped, '/etc')).stat.mode & (2 ** 31)).toBeTruthy();
      expect((await get(stopped, '/etc/passwd')).stat.mode & (2 ** 31)).toBe(0);
      // Plain files over plain files are fine with the flag.
      const ok = await put(stopped, '/tmp', await makeTar([{ name: 'cp-dir/a.txt', body: 'replaced\n' }]), '&noOverwriteDirNonDir=1');
      expect(ok.status).toBe(200);
      expect(await readTar((await get(stopped, '/tmp/cp-dir/a.txt')).tar)).toEqual({ 'a.txt': 'replaced\n' });
    });

    it('answers 404 for missing paths and containers, 400 for a non-directory destination', async () => {
      expect((await get(stopped, '/no/such')).status).toBe(404);
      expect((await request(s(), `/containers/${stopped}/archive?path=/no/such`, { method: 'HEAD' })).status).toBe(404);
      expect((await get('no-such-container', '/etc')).status).toBe(404);
      const notDir = await put(stopped, '/etc/passwd', await makeTar([{ name: 'x', body: '' }]));
      expect(notDir.status).toBe(400);
      expect(notDir.json.message).toMatch(/not a directory/);
      expect((await put(stopped, '/no/such/dir', await makeTar([{ name: 'x', body: '' }]))).status).toBe(404);
    });
  });

  describe('clients that go away', () => {
    it('mid-attach: the container runs on, the daemon answers, nothing leaks', async () => {
      for (let i = 0; i < 20; i++) {
        const { sock, seen } = await rawConnect(s(), `POST /containers/${running}/attach?stream=1&stdout=1&stderr=1 HTTP/1.1\r\nHost: berth\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n`, /tick/);
        expect(seen).toMatch(/^HTTP\/1.1 101/);
        sock.destroy();
      }
      // Attached before start (the `docker run` order), then gone before the start.
      const early = (await post(s(), '/containers/create', { Image: img, Cmd: ['sh', '-c', 'echo early; exit 0'] })).json.Id;
      const { sock } = await rawConnect(s(), `POST /containers/${early}/attach?stream=1&stdout=1 HTTP/1.1\r\nHost: berth\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n`, /101/);
      sock.destroy();
      expect((await post(s(), `/containers/${early}/start`)).status).toBe(204);
      const waited = await post(s(), `/containers/${early}/wait`);
      expect(waited.json.StatusCode).toBe(0);
      await request(s(), `/containers/${early}`, { method: 'DELETE' });
      expect((await request(s(), `/containers/${running}/json`)).json.State.Running).toBe(true);
      await alive();
    });

    it('mid-logs-follow: every follower is dropped cleanly', async () => {
      for (let i = 0; i < 20; i++) {
        const { sock } = await rawConnect(s(), `GET /containers/${running}/logs?stdout=1&follow=1&tail=1 HTTP/1.1\r\nHost: berth\r\n\r\n`, /tick/);
        sock.destroy();
      }
      // A follower that leaves before any output at all.
      for (let i = 0; i < 5; i++) {
        const sock = net.connect(s());
        sock.write(`GET /containers/${running}/logs?stdout=1&follow=1&tail=0 HTTP/1.1\r\nHost: berth\r\n\r\n`);
        await new Promise((r) => setTimeout(r, 20));
        sock.destroy();
      }
      await alive();
    });

    it('mid-pull: the pull is cut off, a later pull of the same image completes', async () => {
      for (const tag of ['a', 'b']) {
        const { sock } = await rawConnect(s(), `POST /images/create?fromImage=${encodeURIComponent(bigImg)}&tag=${tag} HTTP/1.1\r\nHost: berth\r\nContent-Length: 0\r\n\r\n`, /"status"/);
        sock.destroy();
      }
      await alive();
      for (const tag of ['a', 'b']) {
        const res = await post(s(), `/images/create?fromImage=${encodeURIComponent(bigImg)}&tag=${tag}`);
        expect(res.status).toBe(200);
        expect(res.body).not.toMatch(/errorDetail/);
        const c = await post(s(), '/containers/create', { Image: `${bigImg}:${tag}`, Cmd: ['cat', '/tag.txt'] });
        expect(c.status).toBe(201);
        await post(s(), `/containers/${c.json.Id}/start`);
        await post(s(), `/containers/${c.json.Id}/wait`);
        const logs = await request(s(), `/containers/${c.json.Id}/logs?stdout=1`);
        expect(logs.body).toContain(tag);
        await request(s(), `/containers/${c.json.Id}`, { method: 'DELETE' });
      }
    });

    it('mid-events and mid-archive: streams end when their client does', async () => {
      for (let i = 0; i < 10; i++) {
        const { sock } = await rawConnect(s(), `GET /events HTTP/1.1\r\nHost: berth\r\n\r\n`, /200 OK/);
        sock.destroy();
        const arch = await rawConnect(s(), `GET /containers/${running}/archive?path=/bin HTTP/1.1\r\nHost: berth\r\n\r\n`, /200 OK/);
        arch.sock.destroy();
      }
      await alive();
    });

    it('leaves no fds behind', async () => {
      const after = await fdsSettle(daemon.pid, baselineFds + 2);
      expect(after, `fds before ${baselineFds}, after ${after}`).toBeLessThanOrEqual(baselineFds + 2);
    });
  });

  it('200 concurrent requests (list, inspect, ping) all get clear answers', async () => {
    const paths = ['/containers/json?all=1', `/containers/${running}/json`, '/_ping', '/containers/missing/json', '/images/json', '/version'];
    const answers = await Promise.all(Array.from({ length: 200 }, (_, i) => request(s(), paths[i % paths.length])));
    const statuses = answers.map((a) => a.status);
    expect(statuses.filter((st) => st !== 200 && st !== 404)).toEqual([]);
    expect(statuses.filter((st) => st === 404).length).toBe(Math.ceil((200 - 3) / paths.length));
    await alive();
    const after = await fdsSettle(daemon.pid, baselineFds + 2);
    expect(after).toBeLessThanOrEqual(baselineFds + 2);
  });

  it(`fuzz: seeded random JSON to the JSON endpoints for ${FUZZ_SECONDS} s never gets a 5xx`, async () => {
    const rand = seeded(FUZZ_SEED);
    const { value, pick } = jsonGen(rand);
    const failures: string[] = [];
    const created: string[] = [];
    const counts: Record<number, number> = {};
    const deadline = Date.now() + FUZZ_SECONDS * 1000;
    let n = 0;
    const withFields = (base: Record<string, unknown>, fields: string[]) => {
      const body: Record<string, unknown> = { ...base };
      for (let i = 1 + Math.floor(rand() * 3); i > 0; i--) body[pick(fields)] = value(0);
      return body;
    };
    while (Date.now() < deadline) {
      n++;
      const r = rand();
      let method = 'POST';
      let path: string;
      let body: unknown;
      if (r < 0.45) {
        path = '/containers/create';
        const kind = rand();
        if (kind < 0.15) body = value(0);
        else if (kind < 0.6) body = withFields({ Image: img, Cmd: ['true'] }, CREATE_FIELDS);
        else body = { Image: img, Cmd: ['true'], HostConfig: withFields({}, HOST_FIELDS) };
      } else if (r < 0.7) {
        path = `/containers/${running}/exec`;
        body = rand() < 0.2 ? value(0) : withFields({ Cmd: ['true'] }, EXEC_FIELDS);
      } else if (r < 0.8) {
        path = `/containers/${stopped}/update`;
        body = rand() < 0.2 ? value(0) : withFields({}, HOST_FIELDS);
      } else if (r < 0.88) {
        path = `/commit?container=${stopped}&repo=fuzz/commit&tag=latest`;
        body = rand() < 0.3 ? value(0) : withFields({}, CREATE_FIELDS);
      } else if (r < 0.94) {
        // Exec start with random options on a fresh `true` session.
        const exec = await post(s(), `/containers/${running}/exec`, { Cmd: ['true'] });
        path = `/exec/${exec.json.Id}/start`;
        body = rand() < 0.3 ? value(0) : withFields({ Detach: true }, ['Detach', 'Tty', 'ConsoleSize']);
        if ((body as { Detach?: unknown })?.Detach !== true) body = { ...(typeof body === 'object' && body && !Array.isArray(body) ? body : {}), Detach: true };
      } else {
        method = 'GET';
        path = `/containers/json?${pick(['all', 'limit', 'filters', 'size', 'since'])}=${encodeURIComponent(JSON.stringify(value(0)))}`;
      }
      const text = body === undefined ? undefined : JSON.stringify(body);
      let res: Answer;
      try {
        res = await request(s(), path, { method, body: text, timeoutMs: 20_000 });
      } catch (err) {
        failures.push(`#${n} ${method} ${path} ${text}: ${(err as Error).message}`);
        break;
      }
      counts[res.status] = (counts[res.status] ?? 0) + 1;
      if (res.status >= 500) failures.push(`#${n} ${method} ${path} ${text} -> ${res.status} ${res.body}`);
      if (res.status === 201 && path === '/containers/create') created.push(res.json.Id);
      if (failures.length > 20) break;
    }
    console.log(`[fuzz] seed ${FUZZ_SEED}: ${n} requests in ${FUZZ_SECONDS} s, statuses ${JSON.stringify(counts)}`);
    expect(failures, `seed ${FUZZ_SEED}`).toEqual([]);
    expect(n).toBeGreaterThan(50);
    for (const id of created) await request(s(), `/containers/${id}?force=1`, { method: 'DELETE' });
    await post(s(), '/images/prune?filters=' + encodeURIComponent('{"dangling":["false"]}'));
    await alive();
    expect((await request(s(), `/containers/${running}/json`)).json.State.Running).toBe(true);
  });

  it('figures: list latency with 100 containers under 50 concurrent clients, and idle RSS', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 100; i++) {
      const res = await post(s(), '/containers/create', { Image: img, Cmd: ['true'], Labels: { bench: 'list' } });
      expect(res.status).toBe(201);
      ids.push(res.json.Id);
    }
    const latencies: number[] = [];
    const deadline = Date.now() + 3000;
    const agent = new http.Agent({ keepAlive: true, maxSockets: 50 });
    const once = () =>
      new Promise<number>((resolve, reject) => {
        const t0 = process.hrtime.bigint();
        const req = http.get({ socketPath: s(), path: '/containers/json?all=1', agent }, (res) => {
          let size = 0;
          res.on('data', (c) => (size += c.length));
          res.on('end', () => {
            if (res.statusCode !== 200 || size < 100 * 200) reject(new Error(`status ${res.statusCode}, ${size} bytes`));
            else resolve(Number(process.hrtime.bigint() - t0) / 1e6);
          });
        });
        req.on('error', reject);
      });
    await Promise.all(
      Array.from({ length: 50 }, async () => {
        while (Date.now() < deadline && latencies.length < 20_000) latencies.push(await once());
      }),
    );
    agent.destroy();
    latencies.sort((a, b) => a - b);
    const q = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))];
    const list = await request(s(), '/containers/json?all=1&filters=' + encodeURIComponent('{"label":["bench=list"]}'));
    expect(list.json.length).toBe(100);
    for (const id of ids) await request(s(), `/containers/${id}`, { method: 'DELETE' });
    await new Promise((r) => setTimeout(r, 1000));
    const rss = rssKiB(daemon.pid);
    console.log(
      `[figures] GET /containers/json (100 containers listed), 50 concurrent clients, 3 s: ${latencies.length} requests, ` +
        `p50 ${q(0.5).toFixed(1)} ms, p99 ${q(0.99).toFixed(1)} ms; berthd RSS after it ${(rss / 1024).toFixed(1)} MiB`,
    );
    expect(latencies.length).toBeGreaterThan(50);
  });

  it('idle RSS of a fresh berthd', async () => {
    const fresh = await startDaemon();
    try {
      await new Promise((r) => setTimeout(r, 1000));
      const rss = rssKiB(fresh.pid);
      console.log(`[figures] idle berthd RSS: ${(rss / 1024).toFixed(1)} MiB`);
      expect(rss).toBeGreaterThan(0);
    } finally {
      await fresh.stop();
    }
  });
});
