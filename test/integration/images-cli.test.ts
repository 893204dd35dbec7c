/**
 * The image commands of the real CLI against a real berthd: images, image inspect, history, tag,
 * rmi (untag, conflict, delete with blobs), plugins and system check, on images built by umoci and
 * pushed by skopeo to Debian's docker-registry.
 */
import crypto from 'node:crypto';
import { existsSync, promises as fs, readdirSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOk, startDaemon, type RunningDaemon } from '../helpers/daemon';
import { buildBusyboxLayout, makeTempDir, pushImage } from '../helpers/fixtures';
import { startRegistry, type RunningRegistry } from '../helpers/registry';

/** Table rows split on runs of 3+ spaces (the CLI pads columns with at least three). */
function tableRows(stdout: string): string[][] {
  return stdout
    .trimEnd()
    .split('\n')
    .map((l) => l.split(/\s{3,}/));
}

interface ImageConfigDoc {
  architecture: string;
  config: { Cmd?: string[]; Env?: string[] };
  rootfs: { diff_ids: string[] };
  history: { created_by?: string; empty_layer?: boolean }[];
}

/** The config umoci wrote for a tag of a layout (the truth berth's output is checked against). */
async function layoutConfig(dir: string, tag: string): Promise<{ digest: string; doc: ImageConfigDoc; layers: string[] }> {
  const blob = async (digest: string) => fs.readFile(path.join(dir, 'blobs', 'sha256', digest.slice(7)), 'utf8');
  const index = JSON.parse(await fs.readFile(path.join(dir, 'index.json'), 'utf8'));
  const entry = index.manifests.find((m: any) => m.annotations?.['org.opencontainers.image.ref.name'] === tag);
  const manifest = JSON.parse(await blob(entry.digest));
  return { digest: manifest.config.digest, doc: JSON.parse(await blob(manifest.config.digest)), layers: manifest.layers.map((l: any) => l.digest) };
}

const blobsDir = (d: RunningDaemon) => path.join(d.root, 'content', 'blobs', 'sha256');
const hasBlob = (d: RunningDaemon, digest: string) => existsSync(path.join(blobsDir(d), digest.slice(7)));

describe('berth image commands', () => {
  let registry: RunningRegistry;
  let daemon: RunningDaemon;
  let work: string;
  let app: { ref: string; digest: string; config: Awaited<ReturnType<typeof layoutConfig>> };
  let lone: { ref: string; digest: string; config: Awaited<ReturnType<typeof layoutConfig>> };

  beforeAll(async () => {
    registry = await startRegistry();
    work = await makeTempDir('berth-images-cli-');
    const appLayout = path.join(work, 'app');
    const built = await buildBusyboxLayout(appLayout, { layers: 3, cmd: ['sh', '-c', 'echo app'], env: ['APP=1'] });
    app = {
      ref: `${registry.host}/test/app:latest`,
      digest: (await pushImage(built.ref, registry.host, 'test/app:latest')).digest,
      config: await layoutConfig(appLayout, 'latest'),
    };
    const loneLayout = path.join(work, 'lone');
    const loneBuilt = await buildBusyboxLayout(loneLayout, { extraFiles: { 'lone.txt': crypto.randomUUID() } });
    lone = {
      ref: `${registry.host}/test/lone:latest`,
      digest: (await pushImage(loneBuilt.ref, registry.host, 'test/lone:latest')).digest,
      config: await layoutConfig(loneLayout, 'latest'),
    };
    daemon = await startDaemon();
    expectOk(await daemon.cli(['pull', '-q', app.ref]));
    expectOk(await daemon.cli(['pull', '-q', lone.ref]));
  });

  afterAll(async () => {
    await daemon?.stop();
    await registry?.stop();
    if (work) await fs.rm(work, { recursive: true, force: true });
  });

  it('lists images with REPOSITORY TAG IMAGE ID CREATED SIZE', async () => {
    const res = await daemon.cli(['images']);
    expectOk(res);
    const [header, ...rows] = tableRows(res.stdout);
    expect(header).toEqual(['REPOSITORY', 'TAG', 'IMAGE ID', 'CREATED', 'SIZE']);
    const row = rows.find((r) => r[0] === `${registry.host}/test/app`);
    expect(row, res.stdout).toBeDefined();
    expect(row![1]).toBe('latest');
    expect(row![2]).toBe(app.config.digest.slice(7, 19));
    expect(row![3]).toMatch(/ago$/);
    expect(row![4]).toMatch(/^\d+(\.\d+)?[kMG]?B$/);
    expect(rows.some((r) => r[0] === `${registry.host}/test/lone`)).toBe(true);
    expect(rows).toHaveLength(2);

    const quiet = await daemon.cli(['images', '-q']);
    expect(quiet.stdout.trim().split('\n').sort()).toEqual([app.config.digest.slice(7, 19), lone.config.digest.slice(7, 19)].sort());
  });

  it('inspects an image as JSON', async () => {
    const res = await daemon.cli(['image', 'inspect', app.ref]);
    expectOk(res);
    const parsed = JSON.parse(res.stdout);
    expect(parsed).toHaveLength(1);
    const [info] = parsed;
    expect(info.Id).toBe(app.config.digest);
    expect(info.RepoTags).toEqual([app.ref]);
    expect(info.RepoDigests).toEqual([`${registry.host}/test/app@${app.digest}`]);
    expect(info.Config.Cmd).toEqual(['sh', '-c', 'echo app']);
    expect(info.Config.Env).toContain('APP=1');
    expect(info.Architecture).toBe('amd64');
    expect(info.Os).toBe('linux');
    expect(info.RootFS).toEqual({ Type: 'layers', Layers: app.config.doc.rootfs.diff_ids });
    expect(info.RootFS.Layers).toHaveLength(3);
    // By short ID too, and a missing image is an error naming it.
    const byId = await daemon.cli(['image', 'inspect', app.config.digest.slice(7, 19)]);
    expect(JSON.parse(byId.stdout)[0].Id).toBe(app.config.digest);
    const missing = await daemon.cli(['image', 'inspect', 'no-such-image:v9']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('no-such-image:v9');
  });

  it('shows history rows matching the image config, newest first', async () => {
    const res = await daemon.cli(['history', '--no-trunc', app.ref]);
    expectOk(res);
    const [header, ...rows] = tableRows(res.stdout);
    expect(header).toEqual(['IMAGE', 'CREATED', 'CREATED BY', 'SIZE', 'COMMENT']);
    const history = [...app.config.doc.history].reverse();
    expect(rows).toHaveLength(history.length);
    expect(history.length).toBeGreaterThanOrEqual(3);
    rows.forEach((row, i) => {
      expect(row[0]).toBe(i === 0 ? app.config.digest : '<missing>');
      if (history[i].created_by) expect(row.join('   ')).toContain(history[i].created_by);
    });
    const createdBy = rows.map((r) => r.join('   '));
    for (let layer = 1; layer <= 3; layer++) expect(createdBy.some((r) => r.includes(`berth fixture layer ${layer}`))).toBe(true);
    // The layer rows are in layer order from the bottom: layer 1 is the oldest.
    const idx = (n: number) => createdBy.findIndex((r) => r.includes(`berth fixture layer ${n}`));
    expect(idx(3)).toBeLessThan(idx(2));
    expect(idx(2)).toBeLessThan(idx(1));
    // Layer sizes add up to the image's size (both unpacked sizes, not compressed blob sizes).
    const apiRows = (await daemon.api(`/images/${encodeURIComponent(app.ref)}/history`)).json as { Size: number }[];
    const inspected = (await daemon.api(`/images/${encodeURIComponent(app.ref)}/json`)).json;
    expect(apiRows.reduce((n, r) => n + r.Size, 0)).toBe(inspected.Size);
  });

  it('rmi of a digest reference only drops that reference while a tag still names the image', async () => {
    const byDigest = `${registry.host}/test/app@${app.digest}`;
    const res = await daemon.cli(['rmi', byDigest]);
    expectOk(res);
    expect(res.stdout).toBe(`Untagged: ${byDigest}\n`);
    const [info] = JSON.parse((await daemon.cli(['image', 'inspect', app.ref])).stdout);
    expect(info.Id).toBe(app.config.digest);
    expect(info.RepoDigests).toEqual([]);
    for (const layer of app.config.layers) expect(hasBlob(daemon, layer)).toBe(true);
    // Pulling the tag again brings the digest reference back, with nothing to download.
    const again = await daemon.cli(['pull', app.ref]);
    expectOk(again);
    expect(again.stdout).toContain('Image is up to date');
    const [after] = JSON.parse((await daemon.cli(['image', 'inspect', app.ref])).stdout);
    expect(after.RepoDigests).toEqual([byDigest]);
  });

  it('tags an image, and rmi of that tag only untags it', async () => {
    const extra = `${registry.host}/test/app-copy:v1`;
    expectOk(await daemon.cli(['tag', app.ref, extra]));
    const listed = await daemon.cli(['images']);
    const rows = tableRows(listed.stdout).slice(1);
    const copy = rows.find((r) => r[0] === `${registry.host}/test/app-copy`);
    expect(copy?.[1]).toBe('v1');
    expect(copy?.[2]).toBe(app.config.digest.slice(7, 19));

    const rmi = await daemon.cli(['rmi', extra]);
    expectOk(rmi);
    expect(rmi.stdout).toBe(`Untagged: ${extra}\n`);
    const [info] = JSON.parse((await daemon.cli(['image', 'inspect', app.config.digest])).stdout);
    expect(info.RepoTags).toEqual([app.ref]);
    expect(hasBlob(daemon, app.config.digest)).toBe(true);
  });

  it('refuses rmi by ID of an image with two tags (409) unless -f', async () => {
    const second = `${registry.host}/test/lone-alias:latest`;
    expectOk(await daemon.cli(['tag', lone.ref, second]));
    const id = lone.config.digest;

    const api = await daemon.api(`/v1.43/images/${id}`, { method: 'DELETE' });
    expect(api.status).toBe(409);
    expect(api.json.message).toMatch(/conflict/);
    const refused = await daemon.cli(['rmi', id.slice(7, 19)]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/conflict: unable to delete .*must be forced/);
    expect(hasBlob(daemon, id)).toBe(true);

    const forced = await daemon.cli(['rmi', '-f', id.slice(7, 19)]);
    expectOk(forced);
    expect(forced.stdout).toContain(`Untagged: ${lone.ref}`);
    expect(forced.stdout).toContain(`Untagged: ${second}`);
    expect(forced.stdout).toContain(`Deleted: ${id}`);
    expect((await daemon.cli(['image', 'inspect', id])).code).toBe(1);
    expect(hasBlob(daemon, id)).toBe(false);
    for (const layer of lone.config.layers) expect(hasBlob(daemon, layer)).toBe(false);
    // Pull it back for the tests below.
    expectOk(await daemon.cli(['pull', '-q', lone.ref]));
  });

  it('rmi of the last tag deletes the image, its blobs and its unshared layers', async () => {
    const id = lone.config.digest;
    const [info] = JSON.parse((await daemon.cli(['image', 'inspect', lone.ref])).stdout);
    const layersDir = path.join(daemon.root, 'plugins', 'storage.overlay', 'layers');
    // The busybox base layer differs between the two fixture images (built at different times),
    // so every layer of `lone` is its own; check the top chain (its diff ID is its own, too).
    const topChainHex = (info.RootFS.Layers as string[]).length === 1 ? info.RootFS.Layers[0].slice(7) : undefined;
    const unpacked = !!topChainHex && existsSync(path.join(layersDir, topChainHex));

    const res = await daemon.cli(['rmi', lone.ref]);
    expectOk(res);
    expect(res.stdout.split('\n')).toContain(`Untagged: ${lone.ref}`);
    expect(res.stdout.split('\n')).toContain(`Deleted: ${id}`);
    expect((await daemon.cli(['image', 'inspect', lone.ref])).code).toBe(1);
    expect(hasBlob(daemon, id)).toBe(false);
    expect(hasBlob(daemon, lone.digest)).toBe(false);
    for (const layer of lone.config.layers) expect(hasBlob(daemon, layer)).toBe(false);
    if (unpacked) expect(existsSync(path.join(layersDir, topChainHex!))).toBe(false);
    // The other image is untouched.
    expect(hasBlob(daemon, app.config.digest)).toBe(true);
    for (const layer of app.config.layers) expect(hasBlob(daemon, layer)).toBe(true);
    const check = await daemon.cli(['system', 'check']);
    expect(check.code).toBe(0);
    expect(check.stdout).toContain('store is clean');
  });

  it('lists registry.distribution as ok in berth plugins', async () => {
    const res = await daemon.cli(['plugins']);
    expectOk(res);
    const [header, ...rows] = tableRows(res.stdout);
    expect(header.slice(0, 3)).toEqual(['URI', 'STATUS', 'SOURCE']);
    const row = rows.find((r) => r[0] === 'registry.distribution');
    expect(row, res.stdout).toBeDefined();
    expect(row![1]).toBe('ok');
  });

  it('reports a corrupted blob in system check with exit 1', async () => {
    const clean = await daemon.cli(['system', 'check']);
    expect(clean.code).toBe(0);
    expect(clean.stdout).not.toContain('corrupt');

    const victim = app.config.layers[app.config.layers.length - 1];
    const file = path.join(blobsDir(daemon), victim.slice(7));
    await fs.chmod(file, 0o644); // committed blobs are read-only
    const bytes = await fs.readFile(file);
    bytes[bytes.length >> 1] ^= 0x01;
    await fs.writeFile(file, bytes);

    const res = await daemon.cli(['system', 'check']);
    expect(res.code).toBe(1);
    expect(res.stdout.split('\n')).toContain(`corrupt: ${victim}`);
    expect(res.stdout).toMatch(/1 corrupt/);
    expect(readdirSync(blobsDir(daemon))).toContain(victim.slice(7));
  });
});
