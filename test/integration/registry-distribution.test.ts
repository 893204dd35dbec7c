/**
 * registry.distribution against real parts: Debian's docker-registry with images pushed by skopeo
 * (anonymous, htpasswd, token auth), and small node:http servers for the faults a real registry
 * will not produce on demand (redirects to storage, 503s, oversized manifests, stalls).
 * The plugin is built through its manifest's init with a hand-made context, as the kernel would.
 */
import crypto from 'node:crypto';
import { promises as fs } from 'node:fs';
import { execFileSync } from 'node:child_process';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { Readable } from 'node:stream';
import { container as rootContainer, type DependencyContainer } from 'tsyringe';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CredentialStore, MediaTypes, NotFoundError, RegistryError, type Descriptor, type ImageRef, type Logger, type PluginContext } from '../../core/contracts';
import type { DistributionRegistry } from '../../plugins/registry-distribution/client';
import type { DistributionConfig } from '../../plugins/registry-distribution/config';
import manifest from '../../plugins/registry-distribution/index';
import { buildBusyboxLayout, buildMultiPlatformLayout, makeTempDir, pushBusybox, pushImage, skopeoInspect, type MultiPlatformLayout } from '../helpers/fixtures';
import { freePort, startRegistry, startTestServer, type RunningRegistry, type TestServer } from '../helpers/registry';
import { startTokenIssuer, type TokenIssuer } from '../helpers/token-issuer';

interface LogLine {
  level: string;
  msg: string;
  fields?: Record<string, unknown>;
}

/** A logger that prints warnings and errors and keeps every line for assertions. */
function recordingLogger(lines: LogLine[] = [], name = 'test'): Logger {
  const write = (level: string) => (msg: string, fields?: Record<string, unknown>) => {
    lines.push({ level, msg, fields });
    if (level === 'warn' || level === 'error') console.warn(`[${name}] ${level} ${msg}`, fields ?? '');
  };
  return {
    debug: write('debug'),
    info: write('info'),
    warn: write('warn'),
    error: write('error'),
    child: (child) => recordingLogger(lines, `${name}:${child}`),
  };
}

interface PluginUnderTest {
  registry: DistributionRegistry;
  log: LogLine[];
  /** The parent container: register core services (CredentialStore) here. */
  parent: DependencyContainer;
  dispose(): Promise<void>;
}

async function makePlugin(config: Record<string, unknown> = {}): Promise<PluginUnderTest> {
  const stateDir = await makeTempDir('berth-plugin-state-');
  const parent = rootContainer.createChildContainer();
  const log: LogLine[] = [];
  const parsed = manifest.parseConfig!({ ...manifest.defaults, ...config } as Record<string, unknown>);
  const ctx: PluginContext<DistributionConfig> = {
    uri: 'registry.distribution',
    config: parsed,
    root: stateDir,
    stateDir,
    container: parent.createChildContainer(),
    log: recordingLogger(log),
    getSingle: () => undefined,
    getAll: () => [],
  };
  const registry = (await manifest.init(ctx)) as DistributionRegistry;
  return {
    registry,
    log,
    parent,
    async dispose() {
      registry.close();
      await fs.rm(stateDir, { recursive: true, force: true });
    },
  };
}

function sha256(data: Buffer): string {
  return `sha256:${crypto.createHash('sha256').update(data).digest('hex')}`;
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

const isNotFound = (err: unknown) => err instanceof NotFoundError;

describe('registry.distribution against a real registry (anonymous)', () => {
  let registry: RunningRegistry;
  let plugin: PluginUnderTest;
  let work: string;
  let ociDigest: string;
  let v2s2Digest: string;
  let multi: MultiPlatformLayout;
  let multiDigest: string;
  const ref = (path: string, tag?: string): ImageRef => ({ domain: registry.host, path, tag });

  beforeAll(async () => {
    work = await makeTempDir();
    registry = await startRegistry();
    const layout = await buildBusyboxLayout(path.join(work, 'layout'), { layers: 2 });
    ociDigest = (await pushImage(layout.ref, registry.host, 'test/busybox:oci')).digest;
    v2s2Digest = (await pushImage(layout.ref, registry.host, 'test/busybox:v2s2', { format: 'v2s2' })).digest;
    multi = await buildMultiPlatformLayout(path.join(work, 'layout'));
    multiDigest = (await pushImage(multi.ref, registry.host, 'test/multi:latest', { all: true })).digest;
    plugin = await makePlugin({ retryDelayMs: 10 });
  });

  afterAll(async () => {
    await plugin?.dispose();
    await registry?.stop();
    await fs.rm(work, { recursive: true, force: true });
  });

  it('claims every well-formed host and is the fallback', () => {
    expect(plugin.registry.fallback).toBe(true);
    expect(plugin.registry.claims({ domain: 'docker.io', path: 'library/busybox' })).toBe(true);
    expect(plugin.registry.claims(ref('x'))).toBe(true);
    expect(plugin.registry.claims({ domain: 'bad host', path: 'x' })).toBe(false);
  });

  it('fetches an OCI manifest by tag and by digest, byte for byte', async () => {
    const byTag = await plugin.registry.getManifest(ref('test/busybox'), 'oci');
    expect(byTag.mediaType).toBe(MediaTypes.ociManifest);
    expect(sha256(byTag.bytes)).toBe(ociDigest);
    const byDigest = await plugin.registry.getManifest(ref('test/busybox'), ociDigest);
    expect(byDigest.bytes.equals(byTag.bytes)).toBe(true);
    expect(JSON.parse(byTag.bytes.toString()).layers).toHaveLength(2);
  });

  it('returns an OCI index raw, with every platform and the attestation entry', async () => {
    const index = await plugin.registry.getManifest(ref('test/multi'), 'latest');
    expect(index.mediaType).toBe(MediaTypes.ociIndex);
    expect(sha256(index.bytes)).toBe(multiDigest);
    expect(multiDigest).toBe(multi.indexDigest);
    const parsed = JSON.parse(index.bytes.toString());
    expect(parsed.manifests.map((m: Descriptor) => `${m.platform?.os}/${m.platform?.architecture}`)).toEqual(['linux/amd64', 'linux/arm64', 'unknown/unknown']);
    const arm = await plugin.registry.getManifest(ref('test/multi'), multi.arm64.digest);
    expect(sha256(arm.bytes)).toBe(multi.arm64.digest);
  });

  it('fetches a Docker schema 2 manifest with its media type', async () => {
    const m = await plugin.registry.getManifest(ref('test/busybox'), 'v2s2');
    expect(m.mediaType).toBe(MediaTypes.dockerManifest);
    expect(sha256(m.bytes)).toBe(v2s2Digest);
  });

  it('throws NotFoundError naming the reference for a missing tag, repository or digest', async () => {
    const missingTag = plugin.registry.getManifest(ref('test/busybox'), 'nope');
    await expect(missingTag).rejects.toSatisfy(isNotFound);
    await expect(missingTag).rejects.toThrow(`manifest unknown: ${registry.host}/test/busybox:nope`);
    await expect(plugin.registry.getManifest(ref('test/absent'), 'latest')).rejects.toThrow(`manifest unknown: ${registry.host}/test/absent:latest`);
    const digest = `sha256:${'0'.repeat(64)}`;
    await expect(plugin.registry.getManifest(ref('test/busybox'), digest)).rejects.toThrow(`manifest unknown: ${registry.host}/test/busybox@${digest}`);
  });

  it('refuses a malformed reference before any request, naming it', async () => {
    await expect(plugin.registry.getManifest(ref('Test/UPPER'), 'latest')).rejects.toThrow(/invalid repository name "Test\/UPPER"/);
    await expect(plugin.registry.getManifest(ref('test/busybox'), '../x')).rejects.toThrow(/invalid tag or digest "..\/x"/);
  });

  it('streams a blob whose bytes match its digest, and resumes from an offset', async () => {
    const m = JSON.parse((await plugin.registry.getManifest(ref('test/busybox'), 'oci')).bytes.toString());
    const layer: Descriptor = m.layers[0];
    const whole = await readAll(await plugin.registry.getBlob(ref('test/busybox'), layer));
    expect(whole.length).toBe(layer.size);
    expect(sha256(whole)).toBe(layer.digest);
    const tail = await readAll(await plugin.registry.getBlob(ref('test/busybox'), layer, { offset: 1000 }));
    expect(tail.equals(whole.subarray(1000))).toBe(true);
    const missing = { ...layer, digest: `sha256:${'1'.repeat(64)}` };
    await expect(plugin.registry.getBlob(ref('test/busybox'), missing)).rejects.toThrow(`blob unknown: ${registry.host}/test/busybox@${missing.digest}`);
  });

  it('pushes blobs and a manifest that skopeo can read back, and mounts across repositories', async () => {
    const src = ref('test/busybox');
    const dst = ref('pushed/copy');
    const bytes = (await plugin.registry.getManifest(src, 'oci')).bytes;
    const m = JSON.parse(bytes.toString());
    const blobs: Descriptor[] = [m.config, ...m.layers];
    // The first layer is mounted from the source repository, the rest uploaded.
    const [first, ...rest] = blobs;
    expect(await plugin.registry.hasBlob!(dst, first)).toBe(false);
    expect(await plugin.registry.putBlob!(dst, first, () => Readable.from([]), { mountFrom: ['test/busybox'] })).toBe('mounted');
    for (const blob of rest) {
      const data = await readAll(await plugin.registry.getBlob(src, blob));
      expect(await plugin.registry.putBlob!(dst, blob, () => Readable.from([data]))).toBe('pushed');
    }
    expect(await plugin.registry.hasBlob!(dst, first)).toBe(true);
    expect(await plugin.registry.putBlob!(dst, first, () => Readable.from([]))).toBe('exists');
    await plugin.registry.putManifest!(dst, 'v1', { bytes, mediaType: MediaTypes.ociManifest });
    const inspected = JSON.parse(await skopeoInspect(`${registry.host}/pushed/copy:v1`));
    expect(inspected.Digest).toBe(ociDigest);
    expect(inspected.Layers).toEqual(m.layers.map((l: Descriptor) => l.digest));
  });

  it('a blob upload with the wrong digest is refused by the registry', async () => {
    const desc: Descriptor = { mediaType: MediaTypes.ociLayerGzip, digest: `sha256:${'2'.repeat(64)}`, size: 5 };
    await expect(plugin.registry.putBlob!(ref('pushed/bad'), desc, () => Readable.from([Buffer.from('hello')]))).rejects.toThrow(
      /registry 127\.0\.0\.1:\d+ answered 400 for blob .*pushed\/bad@sha256:2222.*DIGEST_INVALID/,
    );
  });
});

describe('registry.distribution with Basic auth (htpasswd)', () => {
  const creds = { user: 'alice', password: 'wonderland' };
  let registry: RunningRegistry;
  let plugin: PluginUnderTest;
  let digest: string;

  beforeAll(async () => {
    registry = await startRegistry({ htpasswd: creds });
    digest = (await pushBusybox(registry.host, 'private/busybox:v1', { creds })).digest;
    plugin = await makePlugin({ retryDelayMs: 10 });
  });

  afterAll(async () => {
    await plugin?.dispose();
    await registry?.stop();
  });

  const ref = (): ImageRef => ({ domain: registry.host, path: 'private/busybox', tag: 'v1' });

  it('pulls with per-request credentials', async () => {
    const m = await plugin.registry.getManifest(ref(), 'v1', { credentials: { username: 'alice', password: 'wonderland' } });
    expect(sha256(m.bytes)).toBe(digest);
  });

  it('refuses anonymous access and a wrong password with clear errors', async () => {
    await expect(plugin.registry.getManifest(ref(), 'v1')).rejects.toThrow(`unauthorized: authentication required for ${registry.host} (accessing ${registry.host}/private/busybox:v1)`);
    const wrong = plugin.registry.getManifest(ref(), 'v1', { credentials: { username: 'alice', password: 'nope' } });
    await expect(wrong).rejects.toThrow(`unauthorized: incorrect username or password for ${registry.host}`);
    await expect(wrong).rejects.toSatisfy((e: unknown) => e instanceof RegistryError && e.status === 401);
  });

  it('uses the CredentialStore when the request carries no credentials', async () => {
    const asked: string[] = [];
    const withStore = await makePlugin({ retryDelayMs: 10 });
    try {
      withStore.parent.register<CredentialStore>(CredentialStore, {
        useValue: {
          async get(host) {
            asked.push(host);
            return host === registry.host ? { username: 'alice', password: 'wonderland' } : undefined;
          },
        },
      });
      const m = await withStore.registry.getManifest(ref(), 'v1');
      expect(sha256(m.bytes)).toBe(digest);
      expect(asked).toContain(registry.host);
      // Per-request credentials win over stored ones.
      await expect(withStore.registry.getManifest(ref(), 'v1', { credentials: { username: 'alice', password: 'bad' } })).rejects.toThrow(/incorrect username or password/);
    } finally {
      await withStore.dispose();
    }
  });

  it('login checks the password', async () => {
    await plugin.registry.login!(registry.host, { username: 'alice', password: 'wonderland' });
    await expect(plugin.registry.login!(registry.host, { username: 'alice', password: 'x' })).rejects.toThrow(`unauthorized: incorrect username or password for ${registry.host}`);
    await expect(plugin.registry.login!(`http://${registry.host}/`, { username: 'alice', password: 'wonderland' })).resolves.toBeUndefined();
  });
});

describe('registry.distribution with token auth', () => {
  const creds = { user: 'bob', password: 'builder' };
  let issuer: TokenIssuer;
  let registry: RunningRegistry;
  let plugin: PluginUnderTest;
  let digest: string;

  beforeAll(async () => {
    issuer = await startTokenIssuer({ users: { bob: 'builder' } });
    registry = await startRegistry({ token: issuer });
    digest = (await pushBusybox(registry.host, 'team/app:v1', { creds, layers: 2 })).digest;
    await pushBusybox(registry.host, 'team/other:v1', { creds });
    plugin = await makePlugin({ retryDelayMs: 10 });
  });

  afterAll(async () => {
    await plugin?.dispose();
    await registry?.stop();
    await issuer?.stop();
  });

  const credentials = { username: 'bob', password: 'builder' };
  const ref = (path = 'team/app'): ImageRef => ({ domain: registry.host, path, tag: 'v1' });

  it('fetches a token for the repository scope and caches it per scope', async () => {
    const before = issuer.tokensIssued;
    const m = await plugin.registry.getManifest(ref(), 'v1', { credentials });
    expect(sha256(m.bytes)).toBe(digest);
    expect(issuer.tokensIssued).toBe(before + 1);
    expect(issuer.issued.at(-1)).toMatchObject({ subject: 'bob', scopes: ['repository:team/app:pull'], service: issuer.service });
    // Same scope: the cached token is reused for manifests and blobs alike.
    const again = await plugin.registry.getManifest(ref(), 'v1', { credentials });
    expect(again.bytes.equals(m.bytes)).toBe(true);
    const layer: Descriptor = JSON.parse(m.bytes.toString()).layers[1];
    const data = await readAll(await plugin.registry.getBlob(ref(), layer, { credentials }));
    expect(sha256(data)).toBe(layer.digest);
    expect(issuer.tokensIssued).toBe(before + 1);
    // Another repository is another scope: one more token.
    await plugin.registry.getManifest(ref('team/other'), 'v1', { credentials });
    expect(issuer.tokensIssued).toBe(before + 2);
  });

  it('reports a wrong password and anonymous access clearly', async () => {
    await expect(plugin.registry.getManifest(ref(), 'v1', { credentials: { username: 'bob', password: 'x' } })).rejects.toThrow(`unauthorized: incorrect username or password for ${registry.host}`);
    await expect(plugin.registry.getManifest(ref(), 'v1')).rejects.toThrow(`unauthorized: authentication required for ${registry.host}`);
  });

  it('login fetches a fresh token with the credentials', async () => {
    const before = issuer.tokensIssued;
    await plugin.registry.login!(registry.host, credentials);
    expect(issuer.tokensIssued).toBe(before + 1);
    await expect(plugin.registry.login!(registry.host, { username: 'bob', password: 'x' })).rejects.toThrow(`unauthorized: incorrect username or password for ${registry.host}`);
  });

  it('pushes with a pull,push token', async () => {
    const m = await plugin.registry.getManifest(ref(), 'v1', { credentials });
    const parsed = JSON.parse(m.bytes.toString());
    const dst = ref('team/copy');
    for (const blob of [parsed.config, ...parsed.layers] as Descriptor[]) {
      const result = await plugin.registry.putBlob!(dst, blob, () => Readable.from([]), {
        credentials,
        mountFrom: ['team/app'],
      });
      expect(result).toBe('mounted');
    }
    await plugin.registry.putManifest!(dst, 'v1', m, { credentials });
    expect(issuer.issued.some((t) => t.scopes.includes('repository:team/copy:pull,push'))).toBe(true);
    expect(JSON.parse(await skopeoInspect(`${registry.host}/team/copy:v1`, { creds })).Digest).toBe(digest);
  });
});

describe('registry.distribution transport behaviour (test servers)', () => {
  const servers: TestServer[] = [];
  const plugins: PluginUnderTest[] = [];
  const serve = async (handler: http.RequestListener) => {
    const s = await startTestServer(handler);
    servers.push(s);
    return s;
  };
  const plug = async (config: Record<string, unknown> = {}) => {
    const p = await makePlugin({ retryDelayMs: 10, ...config });
    plugins.push(p);
    return p;
  };

  afterAll(async () => {
    for (const p of plugins) await p.dispose();
    for (const s of servers) await s.stop();
  });

  const manifestBody = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaTypes.ociManifest, config: {}, layers: [] }));

  it('names the host when the registry is down', async () => {
    const port = await freePort();
    const p = await plug({ retries: 1 });
    await expect(p.registry.getManifest({ domain: `127.0.0.1:${port}`, path: 'x' }, 'latest')).rejects.toThrow(new RegExp(`^cannot reach registry 127\\.0\\.0\\.1:${port}: connect ECONNREFUSED`));
  });

  it('retries a 503 and then succeeds; does not retry a 404', async () => {
    let manifestHits = 0;
    const server = await serve((req, res) => {
      if (req.url === '/v2/') return void res.writeHead(200).end('{}');
      if (req.url === '/v2/flaky/manifests/t') {
        manifestHits++;
        if (manifestHits === 1) return void res.writeHead(503).end('busy');
        return void res.writeHead(200, { 'Content-Type': MediaTypes.ociManifest }).end(manifestBody);
      }
      res.writeHead(404, { 'Content-Type': 'application/json' }).end(JSON.stringify({ errors: [{ code: 'MANIFEST_UNKNOWN', message: 'manifest unknown' }] }));
    });
    const p = await plug({ retries: 3 });
    const m = await p.registry.getManifest({ domain: server.host, path: 'flaky' }, 't');
    expect(m.bytes.equals(manifestBody)).toBe(true);
    expect(manifestHits).toBe(2);
    const before = server.requests.length;
    await expect(p.registry.getManifest({ domain: server.host, path: 'gone' }, 't')).rejects.toThrow(`manifest unknown: ${server.host}/gone:t`);
    expect(server.requests.length - before).toBe(1);
  });

  it('gives up after the configured retries on persistent 5xx', async () => {
    const server = await serve((req, res) => {
      if (req.url === '/v2/') return void res.writeHead(200).end();
      res.writeHead(500).end();
    });
    const p = await plug({ retries: 2 });
    await expect(p.registry.getManifest({ domain: server.host, path: 'x' }, 't')).rejects.toThrow(`registry ${server.host} answered 500 for manifest ${server.host}/x:t`);
    expect(server.requests.filter((r) => r.url === '/v2/x/manifests/t')).toHaveLength(3);
  });

  it('refuses a manifest over 4 MiB without reading all of it', async () => {
    let chunkedBytesWritten = 0;
    const server = await serve((req, res) => {
      if (req.url === '/v2/') return void res.writeHead(200).end();
      if (req.url === '/v2/big/manifests/declared') {
        res.writeHead(200, { 'Content-Type': MediaTypes.ociManifest, 'Content-Length': 5 * 1024 * 1024 });
        res.write(Buffer.alloc(1024, 0x20));
        return; // never finishes: the client must not wait for the rest
      }
      // No Content-Length: the client must count and stop reading.
      res.writeHead(200, { 'Content-Type': MediaTypes.ociManifest });
      const chunk = Buffer.alloc(64 * 1024, 0x20);
      const pump = () => {
        while (chunkedBytesWritten < 64 * 1024 * 1024 && !res.destroyed) {
          chunkedBytesWritten += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        res.end();
      };
      res.on('error', () => {});
      pump();
    });
    const p = await plug();
    await expect(p.registry.getManifest({ domain: server.host, path: 'big' }, 'declared')).rejects.toThrow(`manifest ${server.host}/big:declared is larger than the 4 MiB limit (4194304 bytes)`);
    await expect(p.registry.getManifest({ domain: server.host, path: 'big' }, 'chunked')).rejects.toThrow(`manifest ${server.host}/big:chunked is larger than the 4 MiB limit`);
    expect(chunkedBytesWritten).toBeLessThan(64 * 1024 * 1024);
  });

  it('times out a silent registry, naming the host', async () => {
    const server = await serve(() => {
      /* never answers */
    });
    const p = await plug({ retries: 0, timeoutMs: 200 });
    await expect(p.registry.getManifest({ domain: server.host, path: 'x' }, 't')).rejects.toThrow(`cannot reach registry ${server.host}: timed out after 200 ms`);
  });

  it('stops at once when the caller aborts', async () => {
    const server = await serve((req, res) => {
      if (req.url === '/v2/') return void res.writeHead(200).end();
      /* the manifest never comes */
    });
    const p = await plug({ timeoutMs: 60_000 });
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error('pull cancelled')), 100);
    const started = Date.now();
    await expect(p.registry.getManifest({ domain: server.host, path: 'x' }, 't', { signal: controller.signal })).rejects.toThrow('pull cancelled');
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('refuses schema 1 manifests with a clear message', async () => {
    const server = await serve((req, res) => {
      if (req.url === '/v2/') return void res.writeHead(200).end();
      res.writeHead(200, { 'Content-Type': MediaTypes.dockerSchema1Signed }).end('{"schemaVersion":1,"fsLayers":[]}');
    });
    const p = await plug();
    await expect(p.registry.getManifest({ domain: server.host, path: 'old' }, 'v1')).rejects.toThrow(`unsupported manifest: ${server.host}/old:v1 uses Docker image manifest schema 1`);
    expect(server.requests.at(-1)!.headers.accept).toContain(MediaTypes.ociIndex);
  });

  it('tries mirrors first and falls back to the registry', async () => {
    const origin = await serve((req, res) => {
      if (req.url === '/v2/') return void res.writeHead(200).end();
      res.writeHead(200, { 'Content-Type': MediaTypes.ociManifest }).end(manifestBody);
    });
    const emptyMirror = await serve((req, res) => {
      if (req.url === '/v2/') return void res.writeHead(200).end();
      res.writeHead(404).end();
    });
    const p = await plug({ registries: { [origin.host]: { mirrors: [emptyMirror.host] } } });
    const m = await p.registry.getManifest({ domain: origin.host, path: 'lib/x' }, 'v1');
    expect(m.bytes.equals(manifestBody)).toBe(true);
    expect(emptyMirror.requests.map((r) => r.url)).toContain('/v2/lib/x/manifests/v1');
    expect(origin.requests.map((r) => r.url)).toContain('/v2/lib/x/manifests/v1');
    expect(p.log.some((l) => l.level === 'warn' && l.msg.includes(`mirror ${emptyMirror.host} failed`))).toBe(true);
  });

  it('insecure registries: HTTPS without certificate checks, else plain HTTP', async () => {
    const dir = await makeTempDir('berth-tls-');
    try {
      execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${dir}/key.pem`, '-out', `${dir}/cert.pem`, '-days', '1', '-subj', '/CN=berth-test'], { stdio: 'ignore' });
      const tlsServer = https.createServer({ key: await fs.readFile(`${dir}/key.pem`), cert: await fs.readFile(`${dir}/cert.pem`) }, (req, res) => {
        if (req.url === '/v2/') return void res.writeHead(200).end();
        res.writeHead(200, { 'Content-Type': MediaTypes.ociManifest }).end(manifestBody);
      });
      await new Promise<void>((resolve) => tlsServer.listen(0, '127.0.0.1', () => resolve()));
      const tlsHost = `127.0.0.1:${(tlsServer.address() as AddressInfo).port}`;
      const plainServer = await serve((req, res) => {
        if (req.url === '/v2/') return void res.writeHead(200).end();
        res.writeHead(200, { 'Content-Type': MediaTypes.ociManifest }).end(manifestBody);
      });
      try {
        const p = await plug({ retries: 0, registries: { [tlsHost]: { insecure: true }, [plainServer.host]: { insecure: true } } });
        const overTls = await p.registry.getManifest({ domain: tlsHost, path: 'x' }, 't');
        expect(overTls.bytes.equals(manifestBody)).toBe(true);
        const overHttp = await p.registry.getManifest({ domain: plainServer.host, path: 'x' }, 't');
        expect(overHttp.bytes.equals(manifestBody)).toBe(true);
        // Not marked insecure: a loopback host is spoken to in plain HTTP, which a TLS server refuses.
        const strict = await plug({ retries: 0, timeoutMs: 2000 });
        await expect(strict.registry.getManifest({ domain: tlsHost, path: 'x' }, 't')).rejects.toThrow(`cannot reach registry ${tlsHost}`);
      } finally {
        tlsServer.closeAllConnections();
        await new Promise<void>((resolve) => tlsServer.close(() => resolve()));
      }
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });

  it('holds blob downloads beyond `concurrency` until a stream finishes', async () => {
    const blob = Buffer.alloc(1000, 7);
    const desc: Descriptor = { mediaType: MediaTypes.ociLayerGzip, digest: sha256(blob), size: blob.length };
    const server = await serve((req, res) => {
      if (req.url === '/v2/') return void res.writeHead(200).end();
      res.writeHead(200, { 'Content-Length': blob.length }).end(blob);
    });
    const p = await plug({ concurrency: 1 });
    const ref: ImageRef = { domain: server.host, path: 'x' };
    const first = await p.registry.getBlob(ref, desc);
    let secondReady = false;
    const second = p.registry.getBlob(ref, desc).then((s) => {
      secondReady = true;
      return s;
    });
    await new Promise((r) => setTimeout(r, 200));
    expect(secondReady).toBe(false);
    expect((await readAll(first)).equals(blob)).toBe(true);
    expect((await readAll(await second)).equals(blob)).toBe(true);
  });

  it('follows blob redirects without sending credentials to the other host', async () => {
    const creds = { user: 'carol', password: 'redirected' };
    const registry = await startRegistry({ htpasswd: creds });
    try {
      const { digest } = await pushBusybox(registry.host, 'r/busybox:v1', { creds });
      const registryAuth = `Basic ${Buffer.from('carol:redirected').toString('base64')}`;
      // "Storage": another loopback port that serves blob bytes (fetched from the registry itself).
      const storage = await serve((req, res) => {
        const url = new URL(req.url!, 'http://x');
        http.get(`http://${registry.host}/v2/${url.searchParams.get('repo')}/blobs/${url.searchParams.get('digest')}`, { headers: { Authorization: registryAuth } }, (up) => {
          res.writeHead(up.statusCode!, { 'Content-Length': up.headers['content-length']! });
          up.pipe(res);
        });
      });
      // The front: proxies the registry, but redirects blob GETs to storage like S3-backed registries do.
      const front = await serve((req, res) => {
        const blob = /^\/v2\/(.+)\/blobs\/(sha256:[0-9a-f]{64})$/.exec(req.url!);
        if (blob && req.method === 'GET') {
          res.writeHead(307, { Location: `http://${storage.host}/blob?repo=${blob[1]}&digest=${blob[2]}` }).end();
          return;
        }
        const up = http.request(`http://${registry.host}${req.url}`, { method: req.method, headers: req.headers }, (upRes) => {
          res.writeHead(upRes.statusCode!, upRes.headers);
          upRes.pipe(res);
        });
        req.pipe(up);
      });
      const p = await plug();
      const credentials = { username: 'carol', password: 'redirected' };
      const ref: ImageRef = { domain: front.host, path: 'r/busybox', tag: 'v1' };
      const m = await p.registry.getManifest(ref, 'v1', { credentials });
      expect(sha256(m.bytes)).toBe(digest);
      const layer: Descriptor = JSON.parse(m.bytes.toString()).layers[0];
      const data = await readAll(await p.registry.getBlob(ref, layer, { credentials }));
      expect(sha256(data)).toBe(layer.digest);
      const frontBlobRequests = front.requests.filter((r) => r.url.includes('/blobs/'));
      expect(frontBlobRequests.length).toBeGreaterThan(0);
      expect(frontBlobRequests.every((r) => r.headers.authorization === registryAuth)).toBe(true);
      expect(storage.requests).toHaveLength(1);
      expect(storage.requests[0].headers.authorization).toBeUndefined();
    } finally {
      await registry.stop();
    }
  });
});
