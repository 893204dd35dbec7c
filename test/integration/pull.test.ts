/**
 * `berth pull` end to end: the real CLI talks to a real berthd, which pulls from Debian's
 * docker-registry (images built by umoci and pushed by skopeo) or from small node:http servers for
 * the faults a real registry will not produce (corrupt blobs, oversized manifests, slow links).
 */
import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import { existsSync, promises as fs, readdirSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOk, startDaemon, type CliResult, type RunningDaemon } from '../helpers/daemon';
import { isRoot } from '../helpers/env';
import { buildBusyboxLayout, buildMultiPlatformLayout, makeTempDir, pushImage, skopeoInspect } from '../helpers/fixtures';
import { freePort, pidAlive, startRegistry, startTestServer, type RunningRegistry, type TestServer } from '../helpers/registry';
import { startTokenIssuer, type TokenIssuer } from '../helpers/token-issuer';

const execFileP = promisify(execFile);
const HEX12 = /^[a-f0-9]{12}$/;

/** A new tag `to` in `dir`: the image `from` plus `files` in one more layer (umoci unpack + repack). */
async function deriveImage(dir: string, from: string, to: string, files: Record<string, string | Buffer>): Promise<void> {
  const work = await makeTempDir('berth-derive-');
  try {
    const bundle = path.join(work, 'bundle');
    await execFileP('umoci', ['unpack', ...(isRoot ? [] : ['--rootless']), '--image', `${dir}:${from}`, bundle]);
    for (const [file, content] of Object.entries(files)) await fs.writeFile(path.join(bundle, 'rootfs', file), content);
    await execFileP('umoci', ['repack', '--image', `${dir}:${to}`, '--history.created_by', `add ${Object.keys(files).join(' ')}`, bundle], {
      maxBuffer: 16 * 1024 * 1024,
    });
  } finally {
    await fs.rm(work, { recursive: true, force: true });
  }
}

interface LayoutImage {
  manifest: Buffer;
  manifestDigest: string;
  mediaType: string;
  config: { digest: string; bytes: Buffer };
  layers: { digest: string; size: number; bytes: Buffer }[];
}

/** Read one tag of an OCI layout: its manifest, config and layer blobs. */
async function readLayoutImage(dir: string, tag: string): Promise<LayoutImage> {
  const blob = (digest: string) => fs.readFile(path.join(dir, 'blobs', 'sha256', digest.slice('sha256:'.length)));
  const index = JSON.parse(await fs.readFile(path.join(dir, 'index.json'), 'utf8'));
  const entry = index.manifests.find((m: any) => m.annotations?.['org.opencontainers.image.ref.name'] === tag);
  const manifest = await blob(entry.digest);
  const doc = JSON.parse(manifest.toString('utf8'));
  return {
    manifest,
    manifestDigest: entry.digest,
    mediaType: entry.mediaType,
    config: { digest: doc.config.digest, bytes: await blob(doc.config.digest) },
    layers: await Promise.all(doc.layers.map(async (l: any) => ({ digest: l.digest, size: l.size, bytes: await blob(l.digest) }))),
  };
}

/** Files in the content store's blob directory (hex names). */
function storedBlobs(daemon: RunningDaemon): string[] {
  const dir = path.join(daemon.root, 'content', 'blobs', 'sha256');
  return existsSync(dir) ? readdirSync(dir) : [];
}

const hexOf = (digest: string) => digest.replace(/^sha256:/, '');

interface Proxy extends TestServer {
  /** GET requests per path, e.g. `/v2/test/a/blobs/sha256:...`. */
  gets: Map<string, number>;
  /** Bytes of blob bodies forwarded so far. */
  blobBytes: number;
  /** While set, blob bodies are forwarded at about this many bytes per second. */
  throttle?: number;
}

/** A forwarding proxy in front of a registry that counts requests and can slow blob downloads. */
async function startProxy(target: string): Promise<Proxy> {
  // Assigned before the first request can arrive; the handler reads the live counters through it.
  let proxy: Proxy | undefined;
  const server = await startTestServer((req, res) => {
    const state = proxy!;
    const url = req.url ?? '/';
    const pathOnly = url.split('?')[0];
    if (req.method === 'GET') state.gets.set(pathOnly, (state.gets.get(pathOnly) ?? 0) + 1);
    const upstream = http.request(`http://${target}${url}`, { method: req.method, headers: { ...req.headers, host: target } }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      if (!(req.method === 'GET' && pathOnly.includes('/blobs/sha256:'))) {
        up.pipe(res);
        return;
      }
      up.on('data', (chunk: Buffer) => {
        state.blobBytes += chunk.length;
        const flowing = res.write(chunk);
        if (flowing && !state.throttle) return;
        up.pause();
        const delay = state.throttle ? (chunk.length / state.throttle) * 1000 : 0;
        const resume = () => setTimeout(() => up.resume(), delay);
        if (flowing) resume();
        else res.once('drain', resume);
      });
      up.on('end', () => res.end());
      up.on('error', () => res.destroy());
      res.on('close', () => up.destroy());
    });
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  proxy = Object.assign(server, { gets: new Map<string, number>(), blobBytes: 0, throttle: undefined as number | undefined });
  return proxy;
}

/** Lines of a pull's stdout matching `<12hex>: STATUS`. */
function layerLines(res: CliResult, status: string): string[] {
  return res.stdout
    .split('\n')
    .filter((l) => l.endsWith(`: ${status}`))
    .map((l) => l.slice(0, l.indexOf(':')));
}

describe('berth pull from a real registry', () => {
  let registry: RunningRegistry;
  let daemon: RunningDaemon;
  let work: string;
  let host: string;
  let busyboxDigest: string;
  let v2s2Digest: string;
  let multi: Awaited<ReturnType<typeof buildMultiPlatformLayout>>;
  let sharedLayout: string;

  beforeAll(async () => {
    registry = await startRegistry();
    host = registry.host;
    work = await makeTempDir('berth-pull-');
    const layout = path.join(work, 'busybox');
    const built = await buildBusyboxLayout(layout, { layers: 2, cmd: ['sh', '-c', 'echo hi'] });
    busyboxDigest = (await pushImage(built.ref, host, 'test/busybox:latest')).digest;
    await pushImage(built.ref, host, 'test/busybox-quiet:latest');
    // Its own layers, so the v2s2 pull really downloads through a schema2 manifest.
    const v2s2 = await buildBusyboxLayout(path.join(work, 'v2s2'), { extraFiles: { 'v2s2.txt': crypto.randomUUID() } });
    v2s2Digest = (await pushImage(v2s2.ref, host, 'test/busybox-v2s2:latest', { format: 'v2s2' })).digest;
    multi = await buildMultiPlatformLayout(path.join(work, 'multi'));
    await pushImage(multi.ref, host, 'test/multi:latest', { all: true });
    // Two images on one base layer.
    sharedLayout = path.join(work, 'shared');
    // A base of its own (umoci's tars are reproducible: equal files in the same second give equal layers).
    await buildBusyboxLayout(sharedLayout, { tag: 'base', extraFiles: { 'base-id': crypto.randomUUID() } });
    await deriveImage(sharedLayout, 'base', 'a', { 'a.txt': 'image a\n' });
    await deriveImage(sharedLayout, 'base', 'b', { 'b.txt': 'image b\n' });
    await pushImage(`${sharedLayout}:a`, host, 'test/shared-a:latest');
    await pushImage(`${sharedLayout}:b`, host, 'test/shared-b:latest');
    daemon = await startDaemon();
  });

  afterAll(async () => {
    await daemon?.stop();
    await registry?.stop();
    if (work) await fs.rm(work, { recursive: true, force: true });
  });

  it('pulls by tag with Docker-like output, then lists the image', async () => {
    const ref = `${host}/test/busybox:latest`;
    const res = await daemon.cli(['pull', ref]);
    expectOk(res);
    const lines = res.stdout.trim().split('\n');
    expect(lines[0]).toBe('latest: Pulling from test/busybox');
    const complete = layerLines(res, 'Pull complete');
    expect(complete).toHaveLength(2);
    for (const id of complete) expect(id).toMatch(HEX12);
    expect(lines).toContain(`Digest: ${busyboxDigest}`);
    expect(lines).toContain(`Status: Downloaded newer image for ${ref}`);
    expect(lines[lines.length - 1]).toBe(ref);

    const images = await daemon.cli(['images']);
    expectOk(images);
    const row = images.stdout.split('\n').find((l) => l.startsWith(`${host}/test/busybox `));
    expect(row, images.stdout).toBeDefined();
    expect(row!.split(/\s{2,}/)[1]).toBe('latest');
  });

  it('says the image is up to date on a second pull', async () => {
    const ref = `${host}/test/busybox:latest`;
    const res = await daemon.cli(['pull', `${host}/test/busybox`]);
    expectOk(res);
    expect(res.stdout.split('\n')[0]).toBe('Using default tag: latest');
    expect(res.stdout).toContain(`Status: Image is up to date for ${ref}`);
    expect(layerLines(res, 'Already exists')).toHaveLength(2);
    expect(layerLines(res, 'Pull complete')).toHaveLength(0);
  });

  it('pulls by digest', async () => {
    const ref = `${host}/test/busybox@${busyboxDigest}`;
    const res = await daemon.cli(['pull', ref]);
    expectOk(res);
    const lines = res.stdout.trim().split('\n');
    expect(lines[0]).toBe(`${busyboxDigest}: Pulling from test/busybox`);
    expect(lines).toContain(`Digest: ${busyboxDigest}`);
    // Pulled by tag already: nothing new.
    expect(lines).toContain(`Status: Image is up to date for ${ref}`);
    expect(lines[lines.length - 1]).toBe(ref);
    const inspect = await daemon.cli(['image', 'inspect', ref]);
    expectOk(inspect);
    const [info] = JSON.parse(inspect.stdout);
    expect(info.RepoDigests).toContain(`${host}/test/busybox@${busyboxDigest}`);
  });

  it('prints only the reference with -q', async () => {
    const ref = `${host}/test/busybox-quiet:latest`;
    const res = await daemon.cli(['pull', '-q', ref]);
    expectOk(res);
    expect(res.stdout).toBe(`${ref}\n`);
    expect(res.stderr).toBe('');
    expect((await daemon.cli(['image', 'inspect', ref])).code).toBe(0);
  });

  it('pulls a Docker schema2 (v2s2) image', async () => {
    const ref = `${host}/test/busybox-v2s2:latest`;
    const manifest = JSON.parse(await skopeoInspect(ref, { raw: true }));
    expect(manifest.mediaType).toBe('application/vnd.docker.distribution.manifest.v2+json');
    const res = await daemon.cli(['pull', ref]);
    expectOk(res);
    expect(layerLines(res, 'Pull complete')).toEqual([manifest.layers[0].digest.slice(7, 19)]);
    expect(res.stdout).toContain(`Digest: ${v2s2Digest}`);
    const inspect = await daemon.cli(['image', 'inspect', ref]);
    expectOk(inspect);
    const [info] = JSON.parse(inspect.stdout);
    expect(info.Id).toBe(manifest.config.digest);
    expect(info.Descriptor.mediaType).toBe('application/vnd.docker.distribution.manifest.v2+json');
    expect(info.RootFS.Layers).toHaveLength(1);
  });

  it('picks linux/arm64 from an index with --platform, and the host platform by default', async () => {
    const ref = `${host}/test/multi:latest`;
    const arm = await daemon.cli(['pull', '--platform', 'linux/arm64', ref]);
    expectOk(arm);
    let [info] = JSON.parse((await daemon.cli(['image', 'inspect', ref])).stdout);
    expect(info.Architecture).toBe('arm64');
    // The repo digest is the index's: pulling it again by digest resolves the same index.
    expect(info.RepoDigests).toContain(`${host}/test/multi@${multi.indexDigest}`);

    const dflt = await daemon.cli(['pull', ref]);
    expectOk(dflt);
    expect(dflt.stdout).toContain('Status: Downloaded newer image');
    [info] = JSON.parse((await daemon.cli(['image', 'inspect', ref])).stdout);
    expect(info.Architecture).toBe(process.arch === 'arm64' ? 'arm64' : 'amd64');
  });

  it('fetches a shared base layer once and reports it as already there', async () => {
    const proxy = await startProxy(host);
    try {
      const base = await readLayoutImage(sharedLayout, 'base');
      const baseLayer = base.layers[0].digest;
      const a = await daemon.cli(['pull', `${proxy.host}/test/shared-a:latest`]);
      expectOk(a);
      expect(layerLines(a, 'Pull complete')).toHaveLength(2);
      const b = await daemon.cli(['pull', `${proxy.host}/test/shared-b:latest`]);
      expectOk(b);
      expect(layerLines(b, 'Already exists')).toEqual([hexOf(baseLayer).slice(0, 12)]);
      expect(layerLines(b, 'Pull complete')).toHaveLength(1);
      const baseFetches = [...proxy.gets].filter(([url]) => url.endsWith(`/blobs/${baseLayer}`)).reduce((n, [, c]) => n + c, 0);
      expect(baseFetches).toBe(1);
      // Both images are there, on one stored copy of the base.
      expect(storedBlobs(daemon).filter((h) => h === hexOf(baseLayer))).toHaveLength(1);
    } finally {
      await proxy.stop();
    }
  });

  it('shares one download between two pulls of the same image at once', async () => {
    const layout = path.join(work, 'concurrent');
    const built = await buildBusyboxLayout(layout, { layers: 2, extraFiles: { 'concurrent.txt': crypto.randomUUID() } });
    await pushImage(built.ref, host, 'test/concurrent:latest');
    const image = await readLayoutImage(layout, 'latest');
    const proxy = await startProxy(host);
    try {
      const ref = `${proxy.host}/test/concurrent:latest`;
      const [one, two] = await Promise.all([daemon.cli(['pull', ref]), daemon.cli(['pull', ref])]);
      expectOk(one);
      expectOk(two);
      for (const layer of image.layers) {
        const fetches = [...proxy.gets].filter(([url]) => url.endsWith(`/blobs/${layer.digest}`)).reduce((n, [, c]) => n + c, 0);
        expect(fetches, `GETs of ${layer.digest}`).toBe(1);
        expect(storedBlobs(daemon)).toContain(hexOf(layer.digest));
      }
      const [info] = JSON.parse((await daemon.cli(['image', 'inspect', ref])).stdout);
      expect(info.Id).toBe(image.config.digest);
    } finally {
      await proxy.stop();
    }
  });

  it('lists an image pulled only by digest with its repository and a <none> tag', async () => {
    const layout = path.join(work, 'digest-only');
    const built = await buildBusyboxLayout(layout, { extraFiles: { 'digest-only.txt': crypto.randomUUID() } });
    const { digest } = await pushImage(built.ref, host, 'test/digest-only:v1');
    const ref = `${host}/test/digest-only@${digest}`;
    const res = await daemon.cli(['pull', ref]);
    expectOk(res);
    expect(res.stdout).toContain(`Status: Downloaded newer image for ${ref}`);
    const images = await daemon.cli(['images', '--digests']);
    const row = images.stdout.split('\n').find((l) => l.startsWith(`${host}/test/digest-only `));
    expect(row, images.stdout).toBeDefined();
    expect(row!.split(/\s{3,}/).slice(1, 3)).toEqual(['<none>', digest]);
  });

  it('fails for a missing image, naming the reference, exit 1', async () => {
    const ref = `${host}/test/nothere:latest`;
    const res = await daemon.cli(['pull', ref]);
    expect(res.code).toBe(1);
    expect(res.stderr).toContain(`${host}/test/nothere`);
    expect(res.stderr).toMatch(/not found|unknown/i);
  });

  it('fails when the registry is down, naming the host', async () => {
    const port = await freePort();
    const res = await daemon.cli(['pull', `127.0.0.1:${port}/test/busybox:latest`]);
    expect(res.code).toBe(1);
    expect(res.stderr).toContain(`127.0.0.1:${port}`);
  });
});

describe('berth pull with registry auth', () => {
  const user = 'berthuser';
  const password = 's3cret-pass';
  let work: string;
  let layoutRef: string;

  beforeAll(async () => {
    work = await makeTempDir('berth-pull-auth-');
    layoutRef = (await buildBusyboxLayout(path.join(work, 'layout'))).ref;
  });
  afterAll(async () => {
    if (work) await fs.rm(work, { recursive: true, force: true });
  });

  /** Pull fails anonymously; login; pull works; logout removes the stored credentials. */
  async function loginFlow(host: string, daemon: RunningDaemon): Promise<void> {
    const ref = `${host}/private/busybox:latest`;
    const anonymous = await daemon.cli(['pull', ref]);
    expect(anonymous.code).toBe(1);
    expect(anonymous.stderr).toMatch(/unauthorized/i);
    expect(anonymous.stderr).toContain(host);

    const wrong = await daemon.cli(['login', '-u', user, '--password-stdin', host], { input: 'wrong\n' });
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/unauthorized|incorrect/i);

    const login = await daemon.cli(['login', '-u', user, '--password-stdin', host], { input: `${password}\n` });
    expectOk(login);
    expect(login.stdout).toContain('Login Succeeded');
    const configFile = path.join(daemon.env.DOCKER_CONFIG, 'config.json');
    const stored = JSON.parse(await fs.readFile(configFile, 'utf8'));
    expect(Buffer.from(stored.auths[host].auth, 'base64').toString()).toBe(`${user}:${password}`);

    const pulled = await daemon.cli(['pull', ref]);
    expectOk(pulled);
    expect(pulled.stdout).toContain(`Status: Downloaded newer image for ${ref}`);

    const logout = await daemon.cli(['logout', host]);
    expectOk(logout);
    expect(logout.stdout).toContain(`Removing login credentials for ${host}`);
    expect(JSON.parse(await fs.readFile(configFile, 'utf8')).auths[host]).toBeUndefined();
    // Without credentials the registry refuses again (nothing cached them in the daemon).
    const again = await daemon.cli(['pull', ref]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/unauthorized/i);
  }

  it('Basic auth: unauthorized without login, works after berth login, logout removes it', async () => {
    const registry = await startRegistry({ htpasswd: { user, password } });
    let daemon: RunningDaemon | undefined;
    try {
      await pushImage(layoutRef, registry.host, 'private/busybox:latest', { creds: { user, password } });
      daemon = await startDaemon();
      await loginFlow(registry.host, daemon);
    } finally {
      await daemon?.stop();
      await registry.stop();
    }
  });

  it('Bearer token auth: unauthorized without login, works after berth login, logout removes it', async () => {
    let issuer: TokenIssuer | undefined;
    let registry: RunningRegistry | undefined;
    let daemon: RunningDaemon | undefined;
    try {
      issuer = await startTokenIssuer({ users: { [user]: password } });
      registry = await startRegistry({ token: issuer });
      await pushImage(layoutRef, registry.host, 'private/busybox:latest', { creds: { user, password } });
      daemon = await startDaemon();
      await loginFlow(registry.host, daemon);
      expect(issuer.issued.some((t) => t.subject === user && t.scopes.some((s) => s.includes('private/busybox')))).toBe(true);
    } finally {
      await daemon?.stop();
      await registry?.stop();
      await issuer?.stop();
    }
  });
});

describe('berth pull from a faulty registry', () => {
  let work: string;
  let image: LayoutImage;
  let daemon: RunningDaemon;

  beforeAll(async () => {
    work = await makeTempDir('berth-pull-faulty-');
    const layout = path.join(work, 'layout');
    await buildBusyboxLayout(layout);
    image = await readLayoutImage(layout, 'latest');
    daemon = await startDaemon();
  });
  afterAll(async () => {
    await daemon?.stop();
    if (work) await fs.rm(work, { recursive: true, force: true });
  });

  it('refuses a layer whose bytes do not match its digest, leaving no blob, image or tag', async () => {
    const layer = image.layers[0];
    const corrupted = Buffer.from(layer.bytes);
    corrupted[Math.floor(corrupted.length / 2)] ^= 0xff; // same size, different bytes
    const server = await startTestServer((req, res) => {
      const url = req.url ?? '';
      if (url === '/v2/') return void res.writeHead(200, { 'Content-Type': 'application/json' }).end('{}');
      if (url === '/v2/bad/corrupt/manifests/latest') {
        res.writeHead(200, { 'Content-Type': image.mediaType, 'Docker-Content-Digest': image.manifestDigest, 'Content-Length': image.manifest.length });
        return void res.end(req.method === 'HEAD' ? undefined : image.manifest);
      }
      if (url === `/v2/bad/corrupt/blobs/${image.config.digest}`) return void res.writeHead(200).end(image.config.bytes);
      if (url === `/v2/bad/corrupt/blobs/${layer.digest}`) return void res.writeHead(200, { 'Content-Length': corrupted.length }).end(corrupted);
      res.writeHead(404, { 'Content-Type': 'application/json' }).end('{"errors":[{"code":"NOT_FOUND"}]}');
    });
    try {
      const ref = `${server.host}/bad/corrupt:latest`;
      const res = await daemon.cli(['pull', ref]);
      expect(res.code).toBe(1);
      expect(res.stderr).toMatch(/digest/i);
      expect(res.stderr).toContain(layer.digest);
      const images = await daemon.api('/images/json');
      expect(images.json).toEqual([]);
      expect(storedBlobs(daemon)).not.toContain(hexOf(layer.digest));
      expect(readdirSync(path.join(daemon.root, 'content', 'ingest'))).toEqual([]);
      const inspect = await daemon.cli(['image', 'inspect', ref]);
      expect(inspect.code).toBe(1);
      expect(inspect.stderr).toContain('No such image');
    } finally {
      await server.stop();
    }
  });

  it('refuses a manifest over 4 MiB, naming the limit', async () => {
    const padding = 'x'.repeat(5 * 1024 * 1024);
    const huge = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', annotations: { padding } }));
    const server = await startTestServer((req, res) => {
      const url = req.url ?? '';
      if (url === '/v2/') return void res.writeHead(200).end('{}');
      if (url.startsWith('/v2/big/manifest/manifests/')) {
        res.writeHead(200, { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json', 'Content-Length': huge.length });
        return void res.end(huge);
      }
      res.writeHead(404).end();
    });
    try {
      const res = await daemon.cli(['pull', `${server.host}/big/manifest:latest`]);
      expect(res.code).toBe(1);
      expect(res.stderr).toMatch(/4 MiB|4194304/);
      expect(res.stderr).toContain('big/manifest');
      expect((await daemon.api('/images/json')).json).toEqual([]);
    } finally {
      await server.stop();
    }
  });
});

describe('berthd killed in the middle of a pull', () => {
  let registry: RunningRegistry;
  let proxy: Proxy;
  let work: string;
  let bigLayer: string;
  const daemons: RunningDaemon[] = [];

  beforeAll(async () => {
    registry = await startRegistry();
    work = await makeTempDir('berth-pull-kill-');
    const layout = path.join(work, 'layout');
    await buildBusyboxLayout(layout, { tag: 'base' });
    // Random bytes do not compress: the gzip layer stays about 30 MB.
    await deriveImage(layout, 'base', 'big', { 'random.bin': crypto.randomBytes(30 * 1024 * 1024) });
    await pushImage(`${layout}:big`, registry.host, 'test/big:latest');
    const big = await readLayoutImage(layout, 'big');
    bigLayer = big.layers[1].digest;
    expect(big.layers[1].size).toBeGreaterThan(28 * 1024 * 1024);
    proxy = await startProxy(registry.host);
  }, 180_000);

  afterAll(async () => {
    // Newest first: a restarted daemon runs on its predecessor's root.
    for (const d of daemons.reverse()) await d.stop();
    await proxy?.stop();
    await registry?.stop();
    if (work) await fs.rm(work, { recursive: true, force: true });
  });

  it('leaves a store that checks clean and a pull that completes after restart', async () => {
    const first = await startDaemon();
    daemons.push(first);
    const ref = `${proxy.host}/test/big:latest`;
    proxy.throttle = 2 * 1024 * 1024; // ~15 s for the big layer: the kill lands mid-download
    const pulling = first.cli(['pull', ref]);
    const deadline = Date.now() + 30_000;
    while (proxy.blobBytes < 4 * 1024 * 1024) {
      if (Date.now() > deadline) throw new Error(`the pull did not get going: ${proxy.blobBytes} bytes\n${first.logs()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const ingestDir = path.join(first.root, 'content', 'ingest');
    expect(readdirSync(ingestDir).length).toBeGreaterThan(0); // a download is in flight
    await first.kill9();
    expect(pidAlive(first.pid)).toBe(false);
    const interrupted = await pulling;
    expect(interrupted.code).toBe(1);
    expect(interrupted.stderr).toMatch(/closed the connection before the pull of .*test\/big:latest finished/);
    expect(storedBlobs(first)).not.toContain(hexOf(bigLayer));

    proxy.throttle = undefined;
    const second = await startDaemon({ root: first.root });
    daemons.push(second);
    expect(readdirSync(ingestDir)).toEqual([]);
    expect(storedBlobs(second)).not.toContain(hexOf(bigLayer));
    const check = await second.cli(['system', 'check']);
    expect(check.code, check.stdout + check.stderr).toBe(0);
    expect(check.stdout).not.toMatch(/corrupt:/);
    expect(check.stdout).not.toMatch(/missing:/);

    const pulled = await second.cli(['pull', ref]);
    expectOk(pulled);
    expect(pulled.stdout).toContain(`Status: Downloaded newer image for ${ref}`);
    expect(storedBlobs(second)).toContain(hexOf(bigLayer));
    const after = await second.cli(['system', 'check']);
    expect(after.code).toBe(0);
    expect(after.stdout).toContain('store is clean');
  }, 120_000);
});
