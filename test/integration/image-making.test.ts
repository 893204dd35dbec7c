/**
 * Making images end to end with the real CLI and a real berthd: commit (a file added and one
 * deleted, `-c CMD`), push to Debian's docker-registry (checked with skopeo and umoci), save (an
 * archive that is both an OCI layout and a docker-archive: umoci, skopeo docker-archive: and
 * oci-archive: read it), load (skopeo's docker-archive and oci-archive, gzip, a corrupted archive
 * refused), import of an exported rootfs, commit without changes, and the time of a 20 MB commit.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promises as fs, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { podmanInstance, podmanMissing } from '../bench/peers';
import { hostResidueBefore, removeHostResidue } from '../bench/residue';
import { mountsUnder, expectOk, startDaemon, type RunningDaemon } from '../helpers/daemon';
import { isRoot, rootReason } from '../helpers/env';
import { makeTempDir, pushBusybox, skopeoInspect } from '../helpers/fixtures';
import { snapshotTree } from '../helpers/layer-fixtures';
import { startRegistry, type RunningRegistry } from '../helpers/registry';

const execFileP = promisify(execFile);

async function sh(cmd: string, args: string[]): Promise<string> {
  try {
    return (await execFileP(cmd, args, { maxBuffer: 64 * 1024 * 1024 })).stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')} failed: ${e.stderr?.trim() || e.message}`);
  }
}

/** Path -> type and size (and link target): what two unpackings of one image must agree on. */
async function treeShape(root: string): Promise<Record<string, string>> {
  const snap = await snapshotTree(root);
  return Object.fromEntries(Object.entries(snap).map(([p, e]) => [p, `${e.type} ${e.size ?? ''} ${e.link ?? ''}`.trim()]));
}

/** Offset and size of the data of the biggest regular file in an uncompressed tar (a layer blob). */
function biggestEntry(tar: Buffer): { name: string; offset: number; size: number } {
  let best = { name: '', offset: 0, size: -1 };
  let pos = 0;
  while (pos + 512 <= tar.length) {
    const header = tar.subarray(pos, pos + 512);
    if (header.every((b) => b === 0)) break;
    const name = header.subarray(0, 100).toString('latin1').replace(/\0.*$/s, '');
    const size = parseInt(header.subarray(124, 136).toString('latin1').replace(/\0.*$/s, '').trim() || '0', 8);
    const type = String.fromCharCode(header[156]);
    if ((type === '0' || type === '\0') && size > best.size) best = { name, offset: pos + 512, size };
    pos += 512 + Math.ceil(size / 512) * 512;
  }
  return best;
}

const EMPTY_LAYER_DIFF_ID = 'sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef';

describe.skipIf(!isRoot)(`making images: commit, push, save, load, import (${isRoot ? 'root' : rootReason})`, () => {
  let registry: RunningRegistry;
  let daemon: RunningDaemon;
  let work: string;
  let base: string;
  let committed: string;
  let baseLayers: number;

  const cli = (args: string[]) => daemon.cli(args, { timeoutMs: 180_000 });
  const inspect = async (ref: string) => JSON.parse(expectOk(await cli(['image', 'inspect', ref])).stdout)[0];
  const blobs = () => readdirSync(path.join(daemon.root, 'content', 'blobs', 'sha256')).sort();

  beforeAll(async () => {
    registry = await startRegistry();
    work = await makeTempDir('berth-image-making-');
    base = `${registry.host}/test/base:latest`;
    await pushBusybox(registry.host, 'test/base:latest', { layers: 2, extraFiles: { 'etc/doomed': 'to be deleted\n' } });
    daemon = await startDaemon();
    expectOk(await cli(['pull', '-q', base]));
    baseLayers = (await inspect(base)).RootFS.Layers.length;
    committed = `${registry.host}/test/committed:v1`;
  });

  afterAll(async () => {
    if (daemon) {
      await daemon.removeAllContainers();
      // Every container is gone: nothing of the daemon may still be mounted.
      expect(mountsUnder(daemon.root)).toEqual([]);
      await daemon.stop();
    }
    await registry?.stop();
    if (work) await fs.rm(work, { recursive: true, force: true });
  });

  it('commits a container that added and deleted files, with -c CMD, -m and -a', async () => {
    expectOk(await cli(['run', '--name', 'maker', base, 'sh', '-c', 'echo hello-added > /added; rm /etc/doomed']));
    const res = expectOk(await cli(['commit', '-m', 'add a file', '-a', 'Tess Ter', '-c', 'CMD ["cat","/added"]', '-c', 'ENV STAGE=committed', 'maker', committed]));
    const id = res.stdout.trim();
    expect(id).toMatch(/^sha256:[a-f0-9]{64}$/);

    const img = await inspect(committed);
    expect(img.Id).toBe(id);
    expect(img.Config.Cmd).toEqual(['cat', '/added']);
    expect(img.Config.Env).toContain('STAGE=committed');
    expect(img.Author).toBe('Tess Ter');
    expect(img.RootFS.Layers).toHaveLength(baseLayers + 1);

    // The committed image runs without a pull and shows both changes.
    expect(expectOk(await cli(['run', '--rm', committed])).stdout).toBe('hello-added\n');
    const probe = expectOk(await cli(['run', '--rm', committed, 'sh', '-c', 'test -e /etc/doomed && echo still-there || echo gone']));
    expect(probe.stdout).toBe('gone\n');

    // history: one more row, newest first, with the command, author's comment and the image ID.
    const baseHistory = expectOk(await cli(['history', '-q', base]))
      .stdout.trim()
      .split('\n');
    const history = JSON.parse((await daemon.api(`/images/${encodeURIComponent(committed)}/history`)).body);
    expect(history).toHaveLength(baseHistory.length + 1);
    expect(history[0].Id).toBe(id);
    expect(history[0].Comment).toBe('add a file');
    expect(history[0].CreatedBy).toContain('echo hello-added > /added');
    expect(history[0].Size).toBeGreaterThan(0);
  });

  it('refuses bad commits with errors that name the problem', async () => {
    const missing = await daemon.api('/commit?container=no-such-container', { method: 'POST' });
    expect(missing.status).toBe(404);
    expect(missing.json.message).toContain('no-such-container');
    const badChange = await cli(['commit', '-c', 'RUN echo nope', 'maker']);
    expect(badChange.code).not.toBe(0);
    expect(badChange.stderr).toMatch(/RUN is not a supported change instruction/);
  });

  it('pushes the committed image: base layers mounted, the new one pushed; skopeo and umoci see the change', async () => {
    const res = expectOk(await cli(['push', committed]));
    expect(res.stdout).toContain(`The push refers to repository [${registry.host}/test/committed]`);
    expect(res.stdout).toMatch(/: Preparing\n/);
    expect(res.stdout).toMatch(/: Pushed\n/);
    // The base came from test/base on this registry: its layers are mounted, not uploaded again.
    expect(res.stdout).toContain('Mounted from test/base');
    const m = /v1: digest: (sha256:[a-f0-9]{64}) size: (\d+)/.exec(res.stdout);
    expect(m).not.toBeNull();

    const remote = JSON.parse(await skopeoInspect(committed));
    expect(remote.Digest).toBe(m![1]);
    expect(remote.Layers).toHaveLength(baseLayers + 1);
    const baseRemote = JSON.parse(await skopeoInspect(base));
    expect(remote.Layers.slice(0, baseLayers)).toEqual(baseRemote.Layers);
    // The pushed manifest became a repo digest of the image.
    expect((await inspect(committed)).RepoDigests).toContain(`${registry.host}/test/committed@${m![1]}`);

    const layout = path.join(work, 'pushed-layout');
    await sh('skopeo', ['--insecure-policy', 'copy', '--quiet', '--src-tls-verify=false', `docker://${committed}`, `oci:${layout}:v1`]);
    const bundle = path.join(work, 'pushed-bundle');
    await sh('umoci', ['unpack', '--image', `${layout}:v1`, bundle]);
    expect(readFileSync(path.join(bundle, 'rootfs', 'added'), 'utf8')).toBe('hello-added\n');
    await expect(fs.stat(path.join(bundle, 'rootfs', 'etc', 'doomed'))).rejects.toThrow(/ENOENT/);
    expect(readFileSync(path.join(bundle, 'rootfs', 'etc', 'passwd'), 'utf8')).toContain('root:x:0:0');

    const again = expectOk(await cli(['push', committed]));
    expect(again.stdout.match(/: Layer already exists\n/g)).toHaveLength(baseLayers + 1);
    expect(again.stdout).not.toMatch(/: Pushed\n/);
    expect(again.stdout).toContain(`v1: digest: ${m![1]}`);
  });

  // podman is a peer, not a CI dependency: it runs where it is installed (the bench installs it).
  it.skipIf(!!podmanMissing())(`podman pulls and runs the pushed image${podmanMissing() ? ` (skipped: ${podmanMissing()})` : ''}`, async () => {
    const residue = hostResidueBefore();
    const podman = await podmanInstance(path.join(work, 'podman'));
    try {
      const pulled = await podman.run(['pull', '-q', '--tls-verify=false', committed], 120_000);
      expect(pulled.code, pulled.stderr).toBe(0);
      // The committed CMD prints the added file; the deleted one is gone in podman's rootfs too.
      const ran = await podman.run(['run', '--rm', committed], 60_000);
      expect(ran.code, ran.stderr).toBe(0);
      expect(ran.stdout).toBe('hello-added\n');
      const gone = await podman.run(['run', '--rm', committed, 'sh', '-c', 'test -e /etc/doomed && echo present || echo gone'], 60_000);
      expect(gone.stdout.trim()).toBe('gone');
    } finally {
      await podman.stop();
      // podman leaves cgroups (libpod_parent) and /run/containers whatever its flags: only what it made here goes.
      await removeHostResidue(residue);
    }
  });

  it('push of an unknown image is a 404 naming it', async () => {
    const res = await cli(['push', `${registry.host}/test/nothing:here`]);
    expect(res.code).toBe(1);
    expect(res.stderr).toContain('An image does not exist locally with the tag');
    expect(res.stderr).toContain('test/nothing');
  });

  it('saves an archive that is an OCI layout (umoci) and a docker-archive (skopeo), same tree as export', async () => {
    const archive = path.join(work, 'saved.tar');
    expectOk(await cli(['save', '-o', archive, committed]));
    const dir = path.join(work, 'saved');
    await fs.mkdir(dir);
    await sh('tar', ['-xf', archive, '-C', dir]);
    const index = JSON.parse(readFileSync(path.join(dir, 'index.json'), 'utf8'));
    expect(index.manifests).toHaveLength(1);
    expect(index.manifests[0].annotations).toEqual({ 'org.opencontainers.image.ref.name': 'v1', 'io.containerd.image.name': committed });
    const manifestJson = JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
    expect(manifestJson).toHaveLength(1);
    expect(manifestJson[0].RepoTags).toEqual([committed]);
    expect(manifestJson[0].Layers).toHaveLength(baseLayers + 1);
    for (const p of [manifestJson[0].Config, ...manifestJson[0].Layers]) expect(p).toMatch(/^blobs\/sha256\/[a-f0-9]{64}$/);
    expect(JSON.parse(readFileSync(path.join(dir, 'oci-layout'), 'utf8'))).toEqual({ imageLayoutVersion: '1.0.0' });
    expect(Object.keys(JSON.parse(readFileSync(path.join(dir, 'repositories'), 'utf8')))).toEqual([committed.replace(/:v1$/, '')]);

    const bundle = path.join(work, 'saved-bundle');
    await sh('umoci', ['unpack', '--image', `${dir}:v1`, bundle]);
    expectOk(await cli(['create', '--name', 'exported', committed]));
    const exportTar = path.join(work, 'exported.tar');
    expectOk(await cli(['export', '-o', exportTar, 'exported']));
    const exported = path.join(work, 'exported');
    await fs.mkdir(exported);
    await sh('tar', ['-xf', exportTar, '-C', exported]);
    const unpacked = await treeShape(path.join(bundle, 'rootfs'));
    expect(unpacked['added']).toBe('file 12');
    expect(unpacked['etc/doomed']).toBeUndefined();
    expect(unpacked).toEqual(await treeShape(exported));

    await sh('skopeo', ['--insecure-policy', 'copy', '--quiet', `docker-archive:${archive}`, `oci:${path.join(work, 'from-da')}:x`]);
    await sh('skopeo', ['--insecure-policy', 'copy', '--quiet', `oci-archive:${archive}`, `oci:${path.join(work, 'from-oa')}:x`]);
    const fromOa = JSON.parse(readFileSync(path.join(work, 'from-oa', 'index.json'), 'utf8'));
    // oci-archive kept the very manifest berth stored: same digest as pushed.
    expect(fromOa.manifests[0].digest).toBe(index.manifests[0].digest);
    expectOk(await cli(['rm', 'exported']));
  });

  it('loads its own save after the image was removed, plain and gzip-compressed', async () => {
    const archive = path.join(work, 'saved.tar');
    const id = (await inspect(committed)).Id;
    expectOk(await cli(['rmi', committed]));
    expect((await cli(['image', 'inspect', committed])).code).toBe(1);
    const res = expectOk(await cli(['load', '-i', archive]));
    expect(res.stdout).toBe(`Loaded image: ${committed}\n`);
    expect((await inspect(committed)).Id).toBe(id);
    expect(expectOk(await cli(['run', '--rm', committed])).stdout).toBe('hello-added\n');

    const gz = path.join(work, 'saved.tar.gz');
    await fs.writeFile(gz, zlib.gzipSync(readFileSync(archive)));
    expectOk(await cli(['rmi', committed]));
    expect(expectOk(await cli(['load', '-i', gz])).stdout).toBe(`Loaded image: ${committed}\n`);
    expect(expectOk(await cli(['run', '--rm', committed])).stdout).toBe('hello-added\n');
  });

  it('refuses a corrupted archive and leaves no image and no blob behind', async () => {
    const good = readFileSync(path.join(work, 'saved.tar'));
    const bad = Buffer.from(good);
    const layer = biggestEntry(bad);
    expect(layer.name).toMatch(/^blobs\/sha256\//);
    bad[layer.offset + Math.floor(layer.size / 2)] ^= 0xff;
    const badFile = path.join(work, 'corrupt.tar');
    await fs.writeFile(badFile, bad);
    const name = `${registry.host}/test/committed:v1`;
    expectOk(await cli(['rmi', name]));
    const before = blobs();
    const res = await cli(['load', '-i', badFile]);
    expect(res.code).not.toBe(0);
    expect(res.stderr).toMatch(/digest mismatch/);
    expect(res.stderr).toContain(layer.name.slice('blobs/sha256/'.length));
    expect((await cli(['image', 'inspect', name])).code).toBe(1);
    expect(blobs()).toEqual(before);
    expect(readdirSync(path.join(daemon.root, 'content', 'ingest'))).toEqual([]);
    // The good archive still loads afterwards.
    expectOk(await cli(['load', '-i', path.join(work, 'saved.tar')]));
  });

  it('loads archives made by skopeo (docker-archive and oci-archive) into runnable images', async () => {
    const da = path.join(work, 'skopeo-da.tar');
    const oa = path.join(work, 'skopeo-oa.tar');
    await sh('skopeo', ['--insecure-policy', 'copy', '--quiet', '--src-tls-verify=false', `docker://${committed}`, `docker-archive:${da}:loaded/da:v1`]);
    await sh('skopeo', ['--insecure-policy', 'copy', '--quiet', '--src-tls-verify=false', `docker://${committed}`, `oci-archive:${oa}:loaded/oa:v1`]);
    expect(expectOk(await cli(['load', '-i', da])).stdout).toBe('Loaded image: loaded/da:v1\n');
    expect(expectOk(await cli(['load', '-i', oa])).stdout).toBe('Loaded image: loaded/oa:v1\n');
    expect(expectOk(await cli(['run', '--rm', 'loaded/da:v1'])).stdout).toBe('hello-added\n');
    expect(expectOk(await cli(['run', '--rm', 'loaded/oa:v1', 'echo', 'from-oci-archive'])).stdout).toBe('from-oci-archive\n');
    // skopeo's docker-archive holds uncompressed layers: same diff IDs, same image config.
    expect((await inspect('loaded/da:v1')).RootFS.Layers).toEqual((await inspect(committed)).RootFS.Layers);
  });

  it('loads an old-style docker save archive (<id>/layer.tar, <id>.json, a symlinked layer)', async () => {
    // Rebuilt from skopeo's docker-archive into the layout docker < 25 wrote.
    const src = path.join(work, 'old-src');
    const old = path.join(work, 'old');
    await fs.mkdir(src);
    await fs.mkdir(old);
    await sh('tar', ['-xf', path.join(work, 'skopeo-da.tar'), '-C', src]);
    const [entry] = JSON.parse(readFileSync(path.join(src, 'manifest.json'), 'utf8'));
    const config = readFileSync(path.join(src, entry.Config));
    const configHex = createHash('sha256').update(config).digest('hex');
    await fs.writeFile(path.join(old, `${configHex}.json`), config);
    const layers: string[] = [];
    for (const [i, layerPath] of (entry.Layers as string[]).entries()) {
      const id = createHash('sha256').update(`v1-layer-${i}`).digest('hex');
      await fs.mkdir(path.join(old, id));
      await fs.copyFile(path.join(src, layerPath), path.join(old, id, 'layer.tar'));
      await fs.writeFile(path.join(old, id, 'VERSION'), '1.0');
      await fs.writeFile(path.join(old, id, 'json'), JSON.stringify({ id }));
      layers.push(`${id}/layer.tar`);
    }
    // Docker linked a layer that two images share: the first layer goes through a symlink here.
    await fs.mkdir(path.join(old, 'shared'));
    await fs.symlink(`../${layers[0]}`, path.join(old, 'shared', 'layer.tar'));
    layers[0] = 'shared/layer.tar';
    await fs.writeFile(path.join(old, 'manifest.json'), JSON.stringify([{ Config: `${configHex}.json`, RepoTags: ['loaded/old:v1'], Layers: layers }]));
    await fs.writeFile(path.join(old, 'repositories'), JSON.stringify({ 'loaded/old': { v1: layers.at(-1)!.split('/')[0] } }));
    const archive = path.join(work, 'old.tar');
    // manifest.json last, as docker wrote it.
    await sh('tar', ['-cf', archive, '-C', old, ...readdirSync(old).filter((n) => n !== 'manifest.json'), 'manifest.json']);
    expect(expectOk(await cli(['load', '-i', archive])).stdout).toBe('Loaded image: loaded/old:v1\n');
    expect(expectOk(await cli(['run', '--rm', 'loaded/old:v1'])).stdout).toBe('hello-added\n');
    expect((await inspect('loaded/old:v1')).Id).toBe(`sha256:${configHex}`);
  });

  it('refuses archives that are not image archives, naming what is missing', async () => {
    const junk = path.join(work, 'junk.tar');
    await fs.writeFile(path.join(work, 'hello.txt'), 'hi\n');
    await sh('tar', ['-cf', junk, '-C', work, 'hello.txt']);
    const res = await cli(['load', '-i', junk]);
    expect(res.code).not.toBe(0);
    expect(res.stderr).toMatch(/neither manifest\.json .* nor index\.json/);
    const notTar = path.join(work, 'not.tar');
    await fs.writeFile(notTar, 'this is not a tar archive at all'.repeat(40));
    expect((await cli(['load', '-i', notTar])).code).not.toBe(0);
  });

  it('keeps Docker schema2 media types when the base image is schema2', async () => {
    await pushBusybox(registry.host, 'test/v2s2:latest', { format: 'v2s2' });
    const v2base = `${registry.host}/test/v2s2:latest`;
    expectOk(await cli(['pull', '-q', v2base]));
    expectOk(await cli(['run', '--name', 'v2maker', v2base, 'sh', '-c', 'echo v2 > /v2.txt']));
    const target = `${registry.host}/test/v2s2-committed:v1`;
    expectOk(await cli(['commit', '-c', 'CMD ["cat","/v2.txt"]', 'v2maker', target]));
    expect(expectOk(await cli(['run', '--rm', target])).stdout).toBe('v2\n');
    expectOk(await cli(['push', target]));
    const raw = JSON.parse(await skopeoInspect(target, { raw: true }));
    expect(raw.mediaType).toBe('application/vnd.docker.distribution.manifest.v2+json');
    expect(raw.config.mediaType).toBe('application/vnd.docker.container.image.v1+json');
    expect(raw.layers).toHaveLength(2);
    for (const l of raw.layers) expect(l.mediaType).toBe('application/vnd.docker.image.rootfs.diff.tar.gzip');
    expectOk(await cli(['rm', 'v2maker']));
  });

  it('imports an exported rootfs as a one-layer image that runs echo', async () => {
    const exportTar = path.join(work, 'exported.tar');
    const res = expectOk(await cli(['import', '-m', 'from export', '-c', 'CMD ["echo","imported-default"]', exportTar, 'imported:v1']));
    const id = res.stdout.trim();
    expect(id).toMatch(/^sha256:[a-f0-9]{64}$/);
    const img = await inspect('imported:v1');
    expect(img.Id).toBe(id);
    expect(img.RootFS.Layers).toHaveLength(1);
    expect(img.Os).toBe('linux');
    expect(expectOk(await cli(['run', '--rm', 'imported:v1', 'echo', 'imported-ok'])).stdout).toBe('imported-ok\n');
    expect(expectOk(await cli(['run', '--rm', 'imported:v1'])).stdout).toBe('imported-default\n');
    expect(expectOk(await cli(['run', '--rm', 'imported:v1', 'cat', '/added'])).stdout).toBe('hello-added\n');
    const history = JSON.parse((await daemon.api('/images/imported:v1/history')).body);
    expect(history).toHaveLength(1);
    expect(history[0].Comment).toBe('from export');

    const noMessage = expectOk(await cli(['import', exportTar]));
    const hist2 = JSON.parse((await daemon.api(`/images/${noMessage.stdout.trim()}/history`)).body);
    expect(hist2[0].Comment).toBe('Imported from -');
    const url = await daemon.api('/images/create?fromSrc=http://127.0.0.1:1/x.tar', { method: 'POST' });
    expect(url.status).toBe(400);
  });

  it('commits a container twice without changes: each adds a valid empty layer', async () => {
    expectOk(await cli(['create', '--name', 'unchanged', committed]));
    const first = expectOk(await cli(['commit', 'unchanged', 'unchanged:1'])).stdout.trim();
    const second = expectOk(await cli(['commit', 'unchanged', 'unchanged:2'])).stdout.trim();
    for (const [tag, id] of [
      ['unchanged:1', first],
      ['unchanged:2', second],
    ]) {
      const img = await inspect(tag);
      expect(img.Id).toBe(id);
      expect(img.RootFS.Layers).toHaveLength(baseLayers + 2);
      // An empty changeset is still a layer: Docker's well-known empty tar.
      expect(img.RootFS.Layers.at(-1)).toBe(EMPTY_LAYER_DIFF_ID);
      expect(expectOk(await cli(['run', '--rm', tag])).stdout).toBe('hello-added\n');
    }
    expectOk(await cli(['rm', 'unchanged']));
  });

  it('measures a commit of 20 MB of changes', async () => {
    expectOk(await cli(['run', '--name', 'big', base, 'sh', '-c', 'head -c 20971520 /dev/urandom > /big.bin']));
    const started = process.hrtime.bigint();
    const res = expectOk(await cli(['commit', 'big', 'big:1']));
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    console.log(`[image-making] commit of a container with 20 MB of changes: ${seconds.toFixed(2)} s (CLI round trip)`);
    const img = await inspect('big:1');
    expect(img.Id).toBe(res.stdout.trim());
    expect(expectOk(await cli(['run', '--rm', 'big:1', 'stat', '-c', '%s', '/big.bin'])).stdout).toBe('20971520\n');
    expectOk(await cli(['rm', 'big']));
  }, 180_000);
});
