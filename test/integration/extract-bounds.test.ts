/**
 * Extraction and removal that hostile input cannot drive without bound, and failures that leave
 * nothing behind (issue 12), against a real berthd on overlayfs:
 * - a layer of 200k empty files: berthd's peak RSS grows by a bounded amount (no per-entry state);
 * - a gzip bomb past `maxLayerSize` is refused naming the layer and the limit, leaving no layer,
 *   no image, no blob and no ingest file;
 * - a container that makes a tree deeper than PATH_MAX can be removed, and a berthd restarted over
 *   a root holding such trees (one of them unremovable) starts, cleans one and quarantines the other;
 * - refused imports leave no blobs and no ingest files.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promises as fs, existsSync, readFileSync, constants as fsc, openSync, closeSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import * as tar from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { removeTree } from '../../core/layers/util';
import { expectOk, startDaemon, type RunningDaemon } from '../helpers/daemon';
import { isRoot, rootReason, until } from '../helpers/env';
import { makeTempDir } from '../helpers/fixtures';
import { tarOf } from '../helpers/layer-fixtures';
import { buildBusyboxRootfs } from '../helpers/busybox-rootfs';

const sha256 = (b: Buffer) => 'sha256:' + createHash('sha256').update(b).digest('hex');

/** One ustar header block for an empty regular file or a directory. */
function ustarHeader(name: string, type: 'file' | 'dir'): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100, 'latin1');
  h.write(type === 'dir' ? '0000755\0' : '0000644\0', 100, 'latin1');
  h.write('0000000\0', 108, 'latin1');
  h.write('0000000\0', 116, 'latin1');
  h.write('00000000000\0', 124, 'latin1');
  h.write('14544573000\0', 136, 'latin1');
  h.write(type === 'dir' ? '5' : '0', 156, 'latin1');
  h.write('ustar\0' + '00', 257, 'latin1');
  h.fill(' ', 148, 156);
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += h[i];
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
  return h;
}

/**
 * A gzipped layer of `files` empty files spread over `dirs` directories, headers written by hand
 * (200k entries in about a second). Returns the blob and the diff ID.
 */
function manyEntriesLayer(files: number, dirs: number): { gz: Buffer; diffId: string } {
  const hash = createHash('sha256');
  const out: Buffer[] = [];
  const write = (b: Buffer) => {
    hash.update(b);
    out.push(zlib.gzipSync(b, { level: 1 }));
  };
  const perDir = Math.ceil(files / dirs);
  const batch: Buffer[] = [];
  const flush = () => {
    if (batch.length) write(Buffer.concat(batch.splice(0)));
  };
  for (let d = 0; d < dirs; d++) {
    batch.push(ustarHeader(`d${d}/`, 'dir'));
    for (let f = 0; f < perDir && d * perDir + f < files; f++) batch.push(ustarHeader(`d${d}/f${f}`, 'file'));
    if (batch.length > 4096) flush();
  }
  batch.push(Buffer.alloc(1024));
  flush();
  // Concatenated gzip members are one valid gzip stream.
  return { gz: Buffer.concat(out), diffId: 'sha256:' + hash.digest('hex') };
}

/** An OCI layout archive (what `berth save` writes) of one image with one gzip layer. */
async function ociArchive(layer: { gz: Buffer; diffId: string }): Promise<Buffer> {
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [layer.diffId] } }));
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha256(layer.gz), size: layer.gz.length }],
    }),
  );
  const index = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha256(manifest), size: manifest.length }],
    }),
  );
  const blob = (b: Buffer) => ({ name: `blobs/sha256/${sha256(b).slice(7)}`, content: b });
  return tarOf([{ name: 'oci-layout', content: '{"imageLayoutVersion":"1.0.0"}' }, { name: 'index.json', content: index }, blob(manifest), blob(config), blob(layer.gz)]);
}

/** kB lines of /proc/PID/status as bytes. */
function procStatus(pid: number, key: 'VmRSS' | 'VmHWM'): number {
  const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no ${key} in /proc/${pid}/status`);
  return Number(m[1]) * 1024;
}

/** What a failed operation must not leave: blobs no image uses, ingest files, half layers. */
async function expectNothingLeft(d: RunningDaemon): Promise<void> {
  const check = await d.api('/berth/system/check', { method: 'POST' });
  expect(check.status).toBe(200);
  expect(check.json).toMatchObject({ corrupt: [], orphaned: [], missing: [] });
  expect(await fs.readdir(path.join(d.root, 'content', 'ingest'))).toEqual([]);
  const layersDir = path.join(d.root, 'plugins', 'storage.overlay', 'layers');
  expect((await fs.readdir(layersDir)).filter((n) => n.startsWith('tmp-'))).toEqual([]);
}

const MiB = 1024 * 1024;
/** maxLayerSize in the test config: above the 200k-entry layer (100 MiB of headers), below the bomb. */
const LIMIT = '128MiB';
/**
 * A tree deeper than PATH_MAX, made by a container: busybox's `cd` works on absolute paths and
 * stops at PATH_MAX, so each round makes 100 levels with `mkdir -p` and moves the tree so far
 * below them (rename does not care how deep the moved tree is).
 */
const DEEP = 5000;
const DEEP_SCRIPT = [
  'p=$(i=0; while test $i -lt 100; do busybox printf d/; i=$((i+1)); done)',
  'mkdir -p /deep/$p; n=1',
  `while test $n -lt ${DEEP / 100}; do mkdir -p /next/$p && busybox mv /deep /next/$p && busybox mv /next /deep || exit 1; n=$((n+1)); done`,
  'echo deep',
].join('; ');

/** A tree `depth` levels deep made through fds (paths longer than PATH_MAX never appear). */
function makeDeepTree(root: string, depth: number): void {
  mkdirSync(root, { recursive: true });
  let fd = openSync(root, fsc.O_RDONLY | fsc.O_DIRECTORY);
  for (let i = 0; i < depth; i++) {
    mkdirSync(`/proc/self/fd/${fd}/d`);
    const next = openSync(`/proc/self/fd/${fd}/d`, fsc.O_RDONLY | fsc.O_DIRECTORY);
    closeSync(fd);
    fd = next;
  }
  writeFileSync(`/proc/self/fd/${fd}/leaf`, 'x');
  closeSync(fd);
}

describe.skipIf(!isRoot)(`extraction bounds and clean failures (${isRoot ? 'root' : rootReason})`, () => {
  let daemon: RunningDaemon;
  let work: string;
  let busyboxTar: Buffer;
  const imageId = 'bounds:busybox';

  beforeAll(async () => {
    work = await makeTempDir('berth-bounds-');
    daemon = await startDaemon({ config: { maxLayerSize: LIMIT } });
    const rootfs = buildBusyboxRootfs(path.join(work, 'rootfs'));
    busyboxTar = execFileSync('tar', ['-C', rootfs, '-cf', '-', '.'], { maxBuffer: 64 * MiB });
    await importBusybox(daemon);
  }, 60_000);

  const importBusybox = async (d: RunningDaemon) => {
    const res = await d.api(`/images/create?fromSrc=-&repo=bounds&tag=busybox`, { method: 'POST', body: busyboxTar });
    expect(res.status, res.body).toBe(200);
  };

  afterAll(async () => {
    if (
      daemon &&
      (await daemon.api('/_ping').then(
        () => true,
        () => false,
      ))
    )
      await daemon.removeAllContainers();
    await daemon?.stop();
    if (work) await removeTree(work);
  });

  it('unpacks a layer of 200k entries with bounded memory', async () => {
    // A berthd of its own on a tmpfs root: creating 200k files on this disk would take minutes.
    const fast = path.join(work, 'tmpfs');
    mkdirSync(fast);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2g', 'tmpfs', fast]);
    let many: RunningDaemon | undefined;
    try {
      many = await startDaemon({ root: path.join(fast, 'root'), config: { maxLayerSize: LIMIT } });
      const layer = manyEntriesLayer(200_000, 2_000);
      const archive = await ociArchive(layer);
      const before = procStatus(many.pid, 'VmRSS');
      const started = Date.now();
      const res = await many.api('/images/load', { method: 'POST', body: archive });
      expect(res.status, res.body).toBe(200);
      const growth = procStatus(many.pid, 'VmHWM') - before;
      console.log(`200k-entry layer (${(archive.length / MiB).toFixed(1)} MiB archive): loaded in ${Date.now() - started} ms, berthd peak RSS +${(growth / MiB).toFixed(0)} MiB`);
      // Per-entry state would cost hundreds of MiB here (911 MiB before the streamed applier); the
      // layer's worker thread adds a V8 isolate, a constant 15-20 MiB whatever the entry count.
      expect(growth).toBeLessThan(100 * MiB);
      const id = /sha256:[0-9a-f]{64}/.exec(res.body)![0];
      expect((await many.api(`/images/${id}`, { method: 'DELETE' })).status).toBe(200);
    } finally {
      await many?.stop();
      execFileSync('umount', [fast]);
    }
  }, 300_000);

  it('refuses a gzip bomb past maxLayerSize, naming the layer and the limit, and leaves nothing', async () => {
    const bomb = await tarOf([{ name: 'zeros', content: Buffer.alloc(200 * MiB) }]);
    const layer = { gz: zlib.gzipSync(bomb, { level: 9 }), diffId: sha256(bomb) };
    const imagesBefore = (await daemon.api('/images/json')).json.length;
    // As dockerd does, a load reports its error in the progress stream (an errorDetail message).
    const res = await daemon.api('/images/load', { method: 'POST', body: await ociArchive(layer) });
    const failure = res.body
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l))
      .find((m) => m.errorDetail);
    expect(failure?.error).toContain(`layer ${sha256(layer.gz)}`);
    expect(failure?.error).toMatch(/more than .*134217728 bytes.*maxLayerSize/);
    expect((await daemon.api('/images/json')).json.length).toBe(imagesBefore);
    await expectNothingLeft(daemon);
    const imported = await daemon.api('/images/create?fromSrc=-&repo=bomb', { method: 'POST', body: layer.gz });
    expect(imported.json?.message ?? imported.body).toMatch(/the import source - unpacks to more than .*134217728 bytes.*maxLayerSize/);
    expect((await daemon.api('/images/json')).json.length).toBe(imagesBefore);
    await expectNothingLeft(daemon);
  }, 60_000);

  it('leaves no blobs and no ingest files after refused imports', async () => {
    const hostile = [
      await tarOf([{ name: '../escape', content: 'x' }]),
      await tarOf([{ name: 'a', type: 'link', linkname: '../../etc/passwd' }]),
      await tarOf([{ name: 'dev0', type: 'character-device', devmajor: 0, devminor: 0 }]),
    ];
    for (const body of hostile) {
      const res = await daemon.api('/images/create?fromSrc=-&repo=hostile', { method: 'POST', body });
      expect(res.body).toMatch(/invalid layer/);
    }
    await expectNothingLeft(daemon);
  }, 60_000);

  const removesDeepContainer = async (d: RunningDaemon, driver: string) => {
    const run = expectOk(await d.cli(['run', '--name', 'deep', imageId, 'sh', '-c', DEEP_SCRIPT], { timeoutMs: 120_000 }));
    expect(run.stdout).toContain('deep');
    const rm = await d.cli(['rm', '-f', 'deep']);
    expect(rm.stderr).toBe('');
    expect(rm.code).toBe(0);
    // The tree is deleted after rm answers (renamed away first): it goes, and nothing is quarantined.
    const containers = path.join(d.root, 'plugins', `storage.${driver}`, 'containers');
    await until(
      'the deep tree deleted',
      async () => (await fs.readdir(containers)).length === 0,
      60_000,
      () => fs.readdir(containers),
    );
    expect(existsSync(path.join(d.root, 'quarantine'))).toBe(false);
  };

  it('removes a container whose tree is deeper than PATH_MAX (overlay)', async () => {
    await removesDeepContainer(daemon, 'overlay');
  }, 180_000);

  it('removes a container whose tree is deeper than PATH_MAX (vfs)', async () => {
    const vfs = await startDaemon({ storageDriver: 'vfs' });
    try {
      await importBusybox(vfs);
      await removesDeepContainer(vfs, 'vfs');
    } finally {
      await vfs.removeAllContainers();
      await vfs.stop();
    }
  }, 180_000);

  it('starts over a root holding deep trees: removes what it can, quarantines the rest', async () => {
    const run = expectOk(await daemon.cli(['run', '-d', '--name', 'deep2', imageId, 'sh', '-c', `${DEEP_SCRIPT}; sleep 1000`], { timeoutMs: 120_000 }));
    const id = run.stdout.trim();
    const containersDir = path.join(daemon.root, 'plugins', 'storage.overlay', 'containers');
    // What a crash in the middle of two removals leaves: renamed trees, one with an immutable file.
    makeDeepTree(path.join(containersDir, 'tmp-rm-crashed'), DEEP);
    const stuck = path.join(containersDir, 'tmp-rm-stuck');
    makeDeepTree(stuck, 50);
    writeFileSync(path.join(stuck, 'immutable'), 'x');
    execFileSync('chattr', ['+i', path.join(stuck, 'immutable')]);
    const root = daemon.root;
    await daemon.kill9();
    const first = daemon;
    daemon = await startDaemon({ root, config: { maxLayerSize: LIMIT } });
    try {
      const names = await fs.readdir(containersDir);
      expect(names.filter((n) => n.startsWith('tmp-'))).toEqual([]);
      const quarantined = await fs.readdir(path.join(root, 'quarantine'));
      expect(quarantined).toHaveLength(1);
      expect(quarantined[0]).toMatch(/^tmp-rm-stuck-/);
      expect(daemon.logs()).toMatch(/quarantine/);
      const check = await daemon.api('/berth/system/check', { method: 'POST' });
      expect(check.json.quarantined).toEqual([path.join(root, 'quarantine', quarantined[0])]);
      // The container with the deep tree, left running over the restart, still goes.
      const rm = await daemon.cli(['rm', '-f', id]);
      expect(rm.code, rm.stderr).toBe(0);
      await until(
        'the deep tree deleted',
        async () => (await fs.readdir(containersDir)).length === 0,
        60_000,
        () => fs.readdir(containersDir),
      );
    } finally {
      // Wherever the immutable file ended up, it must not outlive the test.
      const quarantine = path.join(root, 'quarantine');
      const candidates = [path.join(stuck, 'immutable'), ...(await fs.readdir(quarantine).catch(() => [] as string[])).map((n) => path.join(quarantine, n, 'immutable'))];
      for (const f of candidates) {
        try {
          execFileSync('chattr', ['-i', f], { stdio: 'ignore' });
        } catch {
          /* not there */
        }
      }
      await removeTree(quarantine);
      await daemon.removeAllContainers();
      await daemon.stop();
      // The first daemon (killed) has the root in its temp dir: stopping it removes that too.
      await first.stop();
      daemon = first;
    }
  }, 240_000);
});
