/**
 * Smoke test of the registry test infrastructure itself: the real registry, the token issuer and
 * the umoci/skopeo fixtures. Other suites build on these helpers.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildBusyboxLayout, buildMultiPlatformLayout, makeTempDir, pushImage, skopeoInspect } from '../helpers/fixtures';
import { pidAlive, startRegistry, type RunningRegistry } from '../helpers/registry';
import { startTokenIssuer } from '../helpers/token-issuer';

describe('registry test helpers', () => {
  let work: string;
  let layoutRef: string;

  beforeAll(async () => {
    work = await makeTempDir();
    const layout = await buildBusyboxLayout(path.join(work, 'layout'), { layers: 2, extraFiles: { 'hello.txt': 'hi\n' } });
    layoutRef = layout.ref;
  });

  afterAll(async () => {
    await fs.rm(work, { recursive: true, force: true });
  });

  it('starts a registry, serves a skopeo-pushed image, and stops leaving nothing behind', async () => {
    const registry = await startRegistry();
    let stopped = false;
    try {
      expect(registry.host).toBe(`127.0.0.1:${registry.port}`);
      const res = await fetch(`http://${registry.host}/v2/`);
      expect(res.status).toBe(200);
      const { digest } = await pushImage(layoutRef, registry.host, 'smoke/busybox:v1');
      expect(digest).toMatch(/^sha256:[0-9a-f]{64}$/);
      const inspected = JSON.parse(await skopeoInspect(`${registry.host}/smoke/busybox:v1`));
      expect(inspected.Digest).toBe(digest);
      expect(inspected.Layers).toHaveLength(2);
      expect(inspected.Architecture).toBe('amd64');
      const raw = JSON.parse(await skopeoInspect(`${registry.host}/smoke/busybox:v1`, { raw: true }));
      expect(raw.mediaType ?? raw.config.mediaType).toMatch(/oci/);
      await registry.stop();
      stopped = true;
      expect(pidAlive(registry.pid)).toBe(false);
      await expect(fs.stat(registry.dataDir)).rejects.toThrow(/ENOENT/);
      await expect(fetch(`http://${registry.host}/v2/`)).rejects.toThrow();
    } finally {
      if (!stopped) await registry.stop();
    }
  });

  it('pushes a Docker v2s2 manifest when asked', async () => {
    const registry = await startRegistry();
    try {
      await pushImage(layoutRef, registry.host, 'smoke/v2s2:latest', { format: 'v2s2' });
      const raw = JSON.parse(await skopeoInspect(`${registry.host}/smoke/v2s2:latest`, { raw: true }));
      expect(raw.mediaType).toBe('application/vnd.docker.distribution.manifest.v2+json');
    } finally {
      await registry.stop();
    }
  });

  it('pushes a two-platform OCI index with an attestation entry', async () => {
    const registry = await startRegistry();
    try {
      const multi = await buildMultiPlatformLayout(path.join(work, 'multi'));
      const { digest } = await pushImage(multi.ref, registry.host, 'smoke/multi:latest', { all: true });
      expect(digest).toBe(multi.indexDigest);
      const raw = JSON.parse(await skopeoInspect(`${registry.host}/smoke/multi:latest`, { raw: true }));
      expect(raw.mediaType).toBe('application/vnd.oci.image.index.v1+json');
      expect(raw.manifests.map((m: { platform: { architecture: string } }) => m.platform.architecture)).toEqual(['amd64', 'arm64', 'unknown']);
    } finally {
      await registry.stop();
    }
  });

  it('an htpasswd registry refuses anonymous pushes and accepts the right user', async () => {
    const creds = { user: 'alice', password: 's3cret' };
    const registry = await startRegistry({ htpasswd: creds });
    try {
      const res = await fetch(`http://${registry.host}/v2/`);
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toMatch(/^Basic /);
      await expect(pushImage(layoutRef, registry.host, 'smoke/private:v1')).rejects.toThrow(/unauthorized|authentication required/i);
      await pushImage(layoutRef, registry.host, 'smoke/private:v1', { creds });
      await expect(skopeoInspect(`${registry.host}/smoke/private:v1`)).rejects.toThrow();
      expect(JSON.parse(await skopeoInspect(`${registry.host}/smoke/private:v1`, { creds })).Layers).toHaveLength(2);
    } finally {
      await registry.stop();
    }
  });

  it('a token registry accepts tokens from the test issuer', async () => {
    const creds = { user: 'bob', password: 'hunter2' };
    const issuer = await startTokenIssuer({ users: { [creds.user]: creds.password } });
    let registry: RunningRegistry | undefined;
    try {
      registry = await startRegistry({ token: issuer });
      const res = await fetch(`http://${registry.host}/v2/`);
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toContain(`realm="${issuer.realm}"`);
      await expect(pushImage(layoutRef, registry.host, 'smoke/token:v1', { creds: { user: 'bob', password: 'wrong' } })).rejects.toThrow();
      await pushImage(layoutRef, registry.host, 'smoke/token:v1', { creds });
      expect(issuer.tokensIssued).toBeGreaterThan(0);
      expect(issuer.issued.some((t) => t.subject === 'bob' && t.scopes.some((s) => s.includes('smoke/token')))).toBe(true);
      const inspected = JSON.parse(await skopeoInspect(`${registry.host}/smoke/token:v1`, { creds }));
      expect(inspected.Layers).toHaveLength(2);
    } finally {
      await registry?.stop();
      await issuer.stop();
    }
    await expect(fs.stat(issuer.certFile)).rejects.toThrow(/ENOENT/);
  });
});
