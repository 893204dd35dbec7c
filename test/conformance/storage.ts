/**
 * The conformance suite every storage driver passes. Fed by a real image made with umoci (see
 * layer-fixtures.ts); umoci's own unpack is the oracle the container rootfs is compared with.
 */
import { createHash } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tar from 'tar-stream';
import type { StorageDriver } from '../../core/contracts/storage';
import { openLayerStream } from '../../core/layers';
import { chainIds, makeUmociImage, snapshotTree, type FixtureImage } from '../helpers/layer-fixtures';

/** What the core does: hash the uncompressed stream and fail it at its end on a mismatch. */
export function verifyDiffId(stream: Readable, diffId: string): Readable {
  const hash = createHash('sha256');
  const checker = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      cb(null, chunk);
    },
    flush(cb) {
      const got = `sha256:${hash.digest('hex')}`;
      cb(got === diffId ? null : new Error(`diff ID mismatch: expected ${diffId}, got ${got}`));
    },
  });
  stream.on('error', (err) => checker.destroy(err));
  return stream.pipe(checker);
}

export function mountsUnder(dir: string): Promise<string[]> {
  return fs.readFile('/proc/self/mountinfo', 'utf8').then((text) =>
    text
      .split('\n')
      .map((line) => line.split(' ')[4])
      .filter((p) => p !== undefined && p.startsWith(dir)),
  );
}

export async function readTar(stream: Readable): Promise<Map<string, { header: tar.Header; content: string }>> {
  const out = new Map<string, { header: tar.Header; content: string }>();
  const extract = tar.extract();
  stream.pipe(extract as unknown as NodeJS.WritableStream);
  for await (const entry of extract) {
    const chunks: Buffer[] = [];
    for await (const c of entry) chunks.push(c as Buffer);
    out.set(entry.header.name.replace(/\/$/, ''), { header: entry.header, content: Buffer.concat(chunks).toString() });
  }
  return out;
}

export function storageConformance(name: string, makeDriver: (stateDir: string) => Promise<StorageDriver>): void {
  describe(`storage conformance: ${name}`, () => {
    let tmp: string;
    let image: FixtureImage;
    let driver: StorageDriver;
    let chains: string[];
    let stateDir: string;

    beforeAll(async () => {
      tmp = await fs.mkdtemp(path.join(os.tmpdir(), `berth-storage-${name}-`));
      image = await makeUmociImage(path.join(tmp, 'image'));
      stateDir = path.join(tmp, 'state');
      await fs.mkdir(stateDir, { mode: 0o700 });
      driver = await makeDriver(stateDir);
      chains = chainIds(image.layers.map((l) => l.diffId));
    });

    afterAll(async () => {
      await driver?.close?.();
      if (tmp) {
        expect(await mountsUnder(tmp)).toEqual([]);
        await fs.rm(tmp, { recursive: true, force: true });
      }
    });

    const applyAll = async () => {
      // Parallel when the driver says it can, as the core does.
      const apply = (i: number) =>
        driver.applyLayer(chains[i], i === 0 ? null : chains[i - 1], verifyDiffId(openLayerStream(createReadStream(image.layers[i].blob), image.layers[i].mediaType), image.layers[i].diffId));
      if (driver.parallelApply) await Promise.all(image.layers.map((_l, i) => apply(i)));
      else for (let i = 0; i < image.layers.length; i++) await apply(i);
    };

    it('rejects a layer whose content does not match its diff ID, leaving no trace', async () => {
      const layer = image.layers[0];
      const stream = verifyDiffId(openLayerStream(createReadStream(layer.blob), layer.mediaType), `sha256:${'0'.repeat(64)}`);
      await expect(driver.applyLayer(chains[0], null, stream)).rejects.toThrow(/diff ID mismatch/);
      expect(await driver.hasLayer(chains[0])).toBe(false);
      expect(JSON.stringify(await driver.usage())).not.toContain(chains[0].slice(7));
    });

    it('applies every layer of the umoci image (gzip, empty, uncompressed)', async () => {
      expect(image.layers.map((l) => l.mediaType)).toContain('application/vnd.oci.image.layer.v1.tar');
      await applyAll();
      for (const c of chains) expect(await driver.hasLayer(c)).toBe(true);
      // Applying again is a no-op that still consumes the stream.
      await applyAll();
    });

    it('gives a container exactly the rootfs umoci unpacks', async () => {
      await driver.create('tree', chains[chains.length - 1]);
      const rootfs = await driver.mount('tree');
      try {
        const got = await snapshotTree(rootfs);
        const want = await snapshotTree(image.oracle);
        expect(Object.keys(got)).toEqual(Object.keys(want));
        expect(got).toEqual(want);
        // Spot checks that would catch a broken changeset feature even if the oracle were wrong.
        expect(got['etc/gone']).toBeUndefined();
        expect(got['dir/sub']).toBeUndefined();
        expect(got['dir/keep']?.type).toBe('file');
        expect(Object.keys(got).filter((p) => p.startsWith('opq/'))).toEqual(['opq/new']);
        expect(got['file-to-dir']?.type).toBe('dir');
        expect(got['dir-to-file']?.type).toBe('file');
        expect(got['link']?.link).toBe('target2');
        expect(got['setuid']?.mode).toBe(0o4755);
        expect(got['setgid-dir']?.mode).toBe(0o2775);
        expect(got['home/user/owned']).toMatchObject({ uid: 1000, gid: 1000 });
        expect(got['fifo']?.type).toBe('fifo');
        expect(got['xattr-file']?.xattrs).toEqual({ 'user.berth': 'value' });
        expect(got['héllo wörld ✓']?.type).toBe('file');
        expect(got['uncompressed']?.mode).toBe(0o600);
        expect(Object.keys(got).some((p) => Buffer.byteLength(p) > 255)).toBe(true);
        const a = await fs.stat(path.join(rootfs, 'hard-a'));
        const b = await fs.stat(path.join(rootfs, 'hard-b'));
        expect(a.ino).toBe(b.ino);
      } finally {
        await driver.unmount('tree');
      }
    });

    it('keeps container writes out of the layers and out of other containers', async () => {
      const top = chains[chains.length - 1];
      await driver.create('w1', top);
      await driver.create('w2', top);
      const r1 = await driver.mount('w1');
      const r2 = await driver.mount('w2');
      try {
        await fs.writeFile(path.join(r1, 'written-by-w1'), 'w1');
        await fs.writeFile(path.join(r1, 'etc/passwd'), 'changed by w1');
        await expect(fs.access(path.join(r2, 'written-by-w1'))).rejects.toThrow();
        expect(await fs.readFile(path.join(r2, 'etc/passwd'), 'utf8')).toContain('user:x:1000');
        // No layer directory holds the write: search the state dir outside containers/.
        const hits: string[] = [];
        const search = async (dir: string) => {
          for (const e of await fs.readdir(dir, { withFileTypes: true })) {
            const p = path.join(dir, e.name);
            if (e.name === 'written-by-w1') hits.push(p);
            else if (e.isDirectory() && p !== path.join(stateDir, 'containers')) await search(p);
          }
        };
        await search(stateDir);
        expect(hits).toEqual([]);
        // Mounts are counted: a second mount returns the same rootfs and one unmount keeps it.
        expect(await driver.mount('w1')).toBe(r1);
        await driver.unmount('w1');
        expect(await fs.readFile(path.join(r1, 'written-by-w1'), 'utf8')).toBe('w1');
      } finally {
        await driver.unmount('w1');
        await driver.unmount('w2');
      }
    });

    it('reports changes and writes them as an OCI layer with whiteouts', async () => {
      await driver.create('d1', chains[chains.length - 1]);
      const r = await driver.mount('d1');
      try {
        await fs.writeFile(path.join(r, 'added-file'), 'new content\n');
        await fs.rm(path.join(r, 'etc/passwd'));
        await fs.rm(path.join(r, 'dir'), { recursive: true });
      } finally {
        await driver.unmount('d1');
      }
      const changes = await driver.changes('d1');
      expect(changes).toEqual(
        expect.arrayContaining([
          { kind: 'A', path: '/added-file' },
          { kind: 'D', path: '/etc/passwd' },
          { kind: 'C', path: '/etc' },
          { kind: 'D', path: '/dir' },
        ]),
      );
      expect(changes.filter((c) => c.path.startsWith('/dir/'))).toEqual([]);
      expect(changes.find((c) => c.path === '/bin/busybox')).toBeUndefined();
      const entries = await readTar(await driver.diff('d1'));
      expect(entries.get('added-file')?.content).toBe('new content\n');
      expect(entries.has('etc/.wh.passwd')).toBe(true);
      expect(entries.has('.wh.dir')).toBe(true);
      expect(entries.has('bin/busybox')).toBe(false);
    });

    it('an empty container (no image) works', async () => {
      await driver.create('empty', null);
      const r = await driver.mount('empty');
      try {
        expect(await fs.readdir(r)).toEqual([]);
      } finally {
        await driver.unmount('empty');
      }
      await driver.remove('empty');
    });

    it('remove and removeLayer leave nothing behind', async () => {
      for (const id of ['tree', 'w1', 'w2', 'd1']) await driver.remove(id);
      const usage = await driver.usage();
      expect(usage.containers).toEqual({});
      for (const c of [...chains].reverse()) await driver.removeLayer(c);
      expect((await driver.usage()).layers).toEqual({});
      for (const c of chains) expect(await driver.hasLayer(c)).toBe(false);
      expect(await mountsUnder(tmp)).toEqual([]);
      await driver.recover?.([]);
    });
  });
}
