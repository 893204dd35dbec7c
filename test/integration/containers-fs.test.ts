/**
 * A container's filesystem through the real CLI and berthd, on both storage drivers: the writable
 * layer is private to its container, `export` gives the merged tree, `diff` lists the changes,
 * `rm` leaves no mount and no state behind, and overlay and vfs export identical trees.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import * as tarStream from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mountsUnder, expectOk, startDaemon, type RunningDaemon } from '../helpers/daemon';
import { isRoot, rootReason } from '../helpers/env';
import { pushBusybox } from '../helpers/fixtures';
import { startRegistry, type RunningRegistry } from '../helpers/registry';

interface TarEntry {
  name: string;
  type: string;
  mode: number;
  size: number;
  linkname: string | null;
  content?: string;
}

/** Read a tar with tar-stream (not berth's own reader): entries by normalised path. */
async function readTar(data: Buffer): Promise<Map<string, TarEntry>> {
  const entries = new Map<string, TarEntry>();
  const extract = tarStream.extract();
  await new Promise<void>((resolve, reject) => {
    extract.on('entry', (header, stream, next) => {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        const name = header.name.replace(/^\.?\/+/, '').replace(/\/+$/, '');
        const content = Buffer.concat(chunks);
        entries.set(name, {
          name,
          type: header.type ?? 'file',
          mode: (header.mode ?? 0) & 0o7777,
          size: header.size ?? 0,
          linkname: header.linkname ?? null,
          content: header.type === 'file' && content.length < 4096 ? content.toString('utf8') : undefined,
        });
        next();
      });
      stream.on('error', reject);
    });
    extract.on('finish', resolve);
    extract.on('error', reject);
    Readable.from([data]).pipe(extract);
  });
  return entries;
}

/** `berth export` to a file (the CLI refuses a terminal, and stdout is text in runCli). */
async function exportTree(d: RunningDaemon, ref: string): Promise<Map<string, TarEntry>> {
  const file = path.join(d.dir, `export-${ref}.tar`);
  expectOk(await d.cli(['export', '-o', file, ref]));
  const data = await fs.readFile(file);
  await fs.rm(file);
  return readTar(data);
}

/** Every path below `dir` whose name contains `needle`. */
async function pathsNamed(dir: string, needle: string): Promise<string[]> {
  const found: string[] = [];
  const walk = async (d: string): Promise<void> => {
    let entries;
    try {
      entries = await fs.readdir(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = path.join(d, e.name);
      if (e.name.includes(needle)) found.push(p);
      // Layer contents are image files, not state: the container's name cannot be in them.
      if (e.isDirectory() && !e.isSymbolicLink()) await walk(p);
    }
  };
  await walk(dir);
  return found;
}

const IMAGE_FILES = { 'etc/motd': 'welcome aboard\n', 'srv/data.txt': 'image data\n' };

describe.skipIf(!isRoot)(`container filesystems through berthd (${isRoot ? 'root' : rootReason})`, () => {
  let registry: RunningRegistry;
  let img: string;
  const daemons: Record<string, RunningDaemon> = {};
  /** The export of a never-started container of the image, per driver. */
  const pristine: Record<string, Map<string, TarEntry>> = {};

  beforeAll(async () => {
    registry = await startRegistry();
    img = `${registry.host}/test/fs:latest`;
    await pushBusybox(registry.host, 'test/fs:latest', { layers: 2, extraFiles: IMAGE_FILES });
  });

  afterAll(async () => {
    for (const d of Object.values(daemons)) {
      await d.removeAllContainers();
      await d.stop();
    }
    await registry?.stop();
  });

  for (const driver of ['overlay', 'vfs'] as const) {
    describe(`on ${driver}`, () => {
      let d: RunningDaemon;
      const cli = (args: string[]) => d.cli(args);

      beforeAll(async () => {
        d = daemons[driver] = await startDaemon({ storageDriver: driver });
        expectOk(await cli(['pull', '-q', img]));
      });

      it('create prints an id and ps -a shows the container as Created', async () => {
        const id = expectOk(await cli(['create', '--name', 'pristine', img, 'true'])).stdout.trim();
        expect(id).toMatch(/^[0-9a-f]{64}$/);
        const ps = expectOk(await cli(['ps', '-a'])).stdout;
        expect(ps).toMatch(new RegExp(`${id.slice(0, 12)}.*Created.*pristine`));
        expect(expectOk(await cli(['ps'])).stdout).not.toContain(id.slice(0, 12));
        expect(JSON.parse(expectOk(await cli(['inspect', id])).stdout)[0].Driver).toBe(driver);
        pristine[driver] = await exportTree(d, 'pristine');
        expect(pristine[driver].get('etc/motd')?.content).toBe('welcome aboard\n');
        expect(pristine[driver].get('bin/busybox')?.type).toBe('file');
        expect(pristine[driver].get('bin/sh')).toMatchObject({ type: 'symlink', linkname: 'busybox' });
        // Export unmounts again when the stream ends.
        expect(mountsUnder(d.root)).toEqual([]);
      });

      it("a container's writes are its own, and export and diff show them", async () => {
        const script = 'echo x > /newfile; rm /etc/motd; echo changed > /srv/data.txt; mkdir -p /var/made';
        expectOk(await cli(['run', '--name', 'a', img, 'sh', '-c', script]));
        // The exited container's rootfs is no longer mounted.
        expect(mountsUnder(d.root)).toEqual([]);

        const other = expectOk(await cli(['run', '--rm', img, 'sh', '-c', 'test -e /newfile && echo present || echo absent; cat /etc/motd /srv/data.txt']));
        expect(other.stdout).toBe('absent\nwelcome aboard\nimage data\n');

        const tree = await exportTree(d, 'a');
        expect(tree.get('newfile')).toMatchObject({ type: 'file', content: 'x\n' });
        expect(tree.get('srv/data.txt')?.content).toBe('changed\n');
        expect(tree.get('var/made')?.type).toBe('directory');
        expect(tree.has('etc/motd')).toBe(false);
        expect(tree.has('etc/passwd')).toBe(true);
        expect([...tree.keys()].some((n) => n.includes('.wh.'))).toBe(false);

        const diff = expectOk(await cli(['diff', 'a']))
          .stdout.split('\n')
          .filter(Boolean);
        expect(diff).toContain('A /newfile');
        expect(diff).toContain('D /etc/motd');
        expect(diff).toContain('C /etc');
        expect(diff).toContain('C /srv/data.txt');
        expect(diff).toContain('A /var/made');
        expect(diff.filter((l) => l.includes('motd'))).toEqual(['D /etc/motd']);

        // A new container of the image starts from the image again.
        const fresh = await exportTree(d, 'pristine');
        expect(fresh.has('newfile')).toBe(false);
        expect(fresh.get('etc/motd')?.content).toBe('welcome aboard\n');
        expect(expectOk(await cli(['diff', 'pristine'])).stdout).toBe('');
        expect(mountsUnder(d.root)).toEqual([]);
      });

      it('rm leaves no mount, no state dir and no writable layer', async () => {
        const info = JSON.parse(expectOk(await cli(['inspect', 'a'])).stdout)[0];
        const id: string = info.Id;
        expect((await pathsNamed(d.root, id)).length).toBeGreaterThan(0);
        expectOk(await cli(['rm', 'a']));
        expect(mountsUnder(d.root)).toEqual([]);
        expect(await pathsNamed(d.root, id)).toEqual([]);
        expect(expectOk(await cli(['ps', '-a'])).stdout).not.toMatch(/\sa\n/);

        // The same for a container removed while it runs.
        const running = expectOk(await cli(['run', '-d', img, 'sh', '-c', 'echo y > /y; sleep 60'])).stdout.trim();
        // overlay mounts the rootfs while the container runs; vfs uses the directory as it is.
        if (driver === 'overlay') expect(mountsUnder(d.root).length).toBeGreaterThan(0);
        expectOk(await cli(['rm', '-f', running]));
        expect(mountsUnder(d.root)).toEqual([]);
        expect(await pathsNamed(d.root, running)).toEqual([]);
      });
    });
  }

  it('overlay and vfs export identical trees for the same image', () => {
    expect(pristine.overlay, 'the overlay export ran').toBeDefined();
    expect(pristine.vfs, 'the vfs export ran').toBeDefined();
    const shape = (tree: Map<string, TarEntry>) =>
      [...tree.values()].map((e) => ({ name: e.name, type: e.type, mode: e.mode.toString(8), size: e.size, linkname: e.linkname })).sort((a, b) => a.name.localeCompare(b.name));
    const overlay = shape(pristine.overlay);
    expect(overlay.length).toBeGreaterThan(20);
    expect(shape(pristine.vfs)).toEqual(overlay);
  });
});
