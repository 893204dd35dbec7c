/**
 * Hostile layers, table-driven, in the spirit of containerd's TestBreakouts and go-archive's
 * TestUntarInvalid*: each case is rejected with a clear error or contained inside the root; a
 * sentinel directory outside the root never changes, and no partial layer directory remains.
 * Every case runs against both drivers, from the sources (the layer applied inline) and as
 * built in dist/ (the layer applied in a worker thread, as berthd does).
 */
import { existsSync, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StorageDriver } from '../../core/contracts/storage';
import { openLayerStream } from '../../core/layers';
import { syscalls } from '../../core/sys/syscalls';
import { OverlayDriver } from '../../plugins/storage-overlay/driver';
import { VfsDriver } from '../../plugins/storage-vfs/driver';
import { isRoot, rootReason } from '../helpers/env';
import { snapshotTree, streamOf, tarOf, type TarEntry } from '../helpers/layer-fixtures';

const CHAIN = (n: number) => `sha256:${n.toString(16).padStart(64, '0')}`;

interface Case {
  name: string;
  /** Layers, applied in order; a function gets the sentinel's absolute path. */
  layers: (sentinel: string) => Promise<Buffer[]> | Buffer[];
  /** Error for the last layer, or 'contained'. */
  expect: RegExp | 'contained';
  /** Layer blobs given compressed (gzip) instead of as plain tars. */
  gzip?: boolean;
}

const t = (entries: TarEntry[]) => tarOf(entries);

/** Rewrites the first header's devminor field (7 octal digits) and its checksum. */
function withDevMinor(tarBuf: Buffer, minor: number): Buffer {
  const buf = Buffer.from(tarBuf);
  buf.write(minor.toString(8).padStart(7, '0') + '\0', 337, 'latin1');
  buf.fill(' ', 148, 156);
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += buf[i];
  buf.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
  return buf;
}
const up = '../'.repeat(20);

const cases: Case[] = [
  { name: '../ name', layers: async () => [await t([{ name: '../x', content: 'x' }])], expect: /invalid layer: entry "\.\.\/x" escapes the root/ },
  { name: '/../ name', layers: async () => [await t([{ name: '/../x', content: 'x' }])], expect: /escapes the root/ },
  { name: 'a/../../ name', layers: async () => [await t([{ name: 'a/../../x', content: 'x' }])], expect: /escapes the root/ },
  { name: 'absolute name lands under the root', layers: async (s) => [await t([{ name: `${s}/file`, content: 'pwned' }])], expect: 'contained' },
  {
    name: 'absolute symlink, then a file through it (same layer)',
    layers: async (s) => [
      await t([
        { name: 'a', type: 'symlink', linkname: s },
        { name: 'a/file', content: 'pwned' },
        { name: 'a/new', content: 'pwned' },
      ]),
    ],
    expect: 'contained',
  },
  {
    name: 'relative symlink escape, then a file through it (same layer)',
    layers: async (s) => [
      await t([
        { name: 'a', type: 'symlink', linkname: `${up}${s}` },
        { name: 'a/new', content: 'pwned' },
      ]),
    ],
    expect: 'contained',
  },
  {
    name: 'symlink escape, then a file through it in a later layer',
    layers: async (s) => [
      await t([
        { name: 'a', type: 'symlink', linkname: `${up}${s}` },
        { name: 'b', type: 'symlink', linkname: s },
      ]),
      await t([
        { name: 'a/new', content: 'pwned' },
        { name: 'b/file', content: 'pwned' },
      ]),
    ],
    expect: 'contained',
  },
  {
    name: 'directory swapped for a symlink mid-layer',
    layers: async (s) => [
      await t([
        { name: 'd/', type: 'directory' },
        { name: 'd/f', content: 'ok' },
        { name: 'd', type: 'symlink', linkname: s },
        { name: 'd/new', content: 'pwned' },
        { name: 'd/file', content: 'pwned' },
      ]),
    ],
    expect: 'contained',
  },
  { name: 'hardlink to a relative outside path', layers: async (s) => [await t([{ name: 'h', type: 'link', linkname: `${up}${s}/file` }])], expect: /escapes the root/ },
  { name: 'hardlink to an absolute path', layers: async (s) => [await t([{ name: 'h', type: 'link', linkname: `${s}/file` }])], expect: /points to missing/ },
  {
    name: 'hardlink through a symlink',
    layers: async (s) => [
      await t([
        { name: 's', type: 'symlink', linkname: s },
        { name: 'h', type: 'link', linkname: 's/file' },
      ]),
    ],
    expect: /points to missing/,
  },
  {
    name: 'hardlink to a symlink, then chmod/chown through it',
    layers: async (s) => [
      await t([
        { name: 's', type: 'symlink', linkname: `${s}/file` },
        { name: 'h', type: 'link', linkname: 's', mode: 0o777, uid: 1234 },
        { name: 'h', type: 'link', linkname: 's', mode: 0o4777 },
      ]),
    ],
    expect: 'contained',
  },
  { name: 'whiteout .wh..', layers: async () => [await t([{ name: '.wh..' }])], expect: /invalid layer: entry "\.wh\.\." is not a valid whiteout/ },
  { name: 'whiteout .wh...', layers: async () => [await t([{ name: 'd/.wh...' }])], expect: /not a valid whiteout/ },
  { name: 'bare .wh.', layers: async () => [await t([{ name: '.wh.' }])], expect: /not a valid whiteout/ },
  { name: 'whiteout with ..', layers: async () => [await t([{ name: 'd/../.wh.x' }])], expect: /whiteout "d\/\.\.\/\.wh\.x" contains "\.\."/ },
  { name: 'whiteout escaping with ..', layers: async () => [await t([{ name: '../.wh.sentinel' }])], expect: /escapes the root/ },
  {
    name: 'whiteout and opaque marker through a symlink',
    layers: async (s) => [await t([{ name: 'w', type: 'symlink', linkname: s }]), await t([{ name: 'w/.wh.file' }, { name: 'w/.wh..wh..opq' }])],
    expect: 'contained',
  },
  {
    name: 'PAX trusted.* xattr',
    layers: async () => [await t([{ name: 'f', content: 'x', pax: { 'SCHILY.xattr.trusted.overlay.opaque': 'y' } }])],
    expect: /trusted\.\* xattr \(trusted\.overlay\.opaque\)/,
  },
  {
    name: 'device number out of range',
    layers: async () => [await t([{ name: 'dev', type: 'block-device', devmajor: 4096, devminor: 1 }])],
    expect: /out-of-range number 4096:1/,
  },
  {
    name: 'minor device number out of range',
    // tar-stream writes at most 6 octal digits: patch the header to hold a 21-bit minor.
    layers: async () => [withDevMinor(await t([{ name: 'dev', type: 'character-device', devmajor: 1, devminor: 1 }]), 0o7777777)],
    expect: /out-of-range number 1:2097151/,
  },
  { name: 'char device 0:0 (a fake whiteout)', layers: async () => [await t([{ name: 'dev', type: 'character-device', devmajor: 0, devminor: 0 }])], expect: /reserved for overlay whiteouts/ },
  {
    name: 'symlink loop',
    layers: async () => [
      await t([
        { name: 'a', type: 'symlink', linkname: 'a' },
        { name: 'a/x', content: 'x' },
      ]),
    ],
    expect: /too many symlinks/,
  },
  {
    name: 'tar truncated inside an entry',
    layers: async () => [(await t([{ name: 'f', content: 'y'.repeat(5000) }])).subarray(0, 3000)],
    expect: /invalid layer: truncated tar: entry "f" is cut short by the end of the stream/,
  },
  {
    name: 'tar without its end-of-archive marker',
    layers: async () => {
      const full = await t([{ name: 'f', content: 'y'.repeat(100) }]);
      return [full.subarray(0, 1024)];
    },
    expect: /truncated tar: no end-of-archive marker/,
  },
  {
    name: 'garbage after the end of the tar',
    layers: async () => [Buffer.concat([await t([{ name: 'f', content: 'x' }]), Buffer.alloc(512, 'garbage!')])],
    expect: /invalid layer: Invalid tar header/,
  },
  {
    name: 'gzip with garbage after it',
    layers: async () => [Buffer.concat([zlib.gzipSync(await t([{ name: 'f', content: 'x' }])), Buffer.from('trailing garbage')])],
    gzip: true,
    expect: /invalid layer: (16 bytes of trailing data after the gzip stream|bad gzip data)/,
  },
  {
    name: 'gzip with zeros after it',
    layers: async () => [Buffer.concat([zlib.gzipSync(await t([{ name: 'f', content: 'x' }])), Buffer.alloc(64)])],
    gzip: true,
    expect: /64 bytes of trailing data after the gzip stream/,
  },
];

/** The built tree (`*-built`): its drivers apply each layer in a worker thread (core/layers/apply-worker.ts). */
const DIST = path.resolve(__dirname, '../../dist');
const built = existsSync(path.join(DIST, 'core/layers/apply-thread.js'));

const drivers: Array<[string, (stateDir: string) => Promise<StorageDriver>]> = [
  [
    'overlay',
    async (stateDir) => {
      const d = new OverlayDriver(stateDir, syscalls, { mountOptions: [] });
      await d.init();
      return d;
    },
  ],
  [
    'vfs',
    async (stateDir) => {
      const d = new VfsDriver(stateDir, syscalls, { copyConcurrency: 8 });
      await d.init();
      return d;
    },
  ],
  ...(built
    ? ([
        [
          'overlay-built',
          async (stateDir) => {
            const d: StorageDriver = new (require(`${DIST}/plugins/storage-overlay/driver.js`).OverlayDriver)(stateDir, require(`${DIST}/core/sys/syscalls.js`).syscalls, { mountOptions: [] });
            await d.init();
            return d;
          },
        ],
        [
          'vfs-built',
          async (stateDir) => {
            const d: StorageDriver = new (require(`${DIST}/plugins/storage-vfs/driver.js`).VfsDriver)(stateDir, require(`${DIST}/core/sys/syscalls.js`).syscalls, { copyConcurrency: 8 });
            await d.init();
            return d;
          },
        ],
      ] as Array<[string, (stateDir: string) => Promise<StorageDriver>]>)
    : []),
];

if (!built) it.skip('hostile layers through the built drivers: dist/ is not built (npm run build)', () => undefined);

describe.skipIf(!isRoot)(`hostile layers (${rootReason})`, () => {
  let tmp: string;
  let sentinel: string;
  let before: Awaited<ReturnType<typeof snapshotTree>>;

  beforeAll(async () => {
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'berth-hostile-'));
    sentinel = path.join(tmp, 'sentinel');
    await fs.mkdir(path.join(sentinel, 'dir'), { recursive: true });
    await fs.writeFile(path.join(sentinel, 'file'), 'precious\n', { mode: 0o600 });
    before = await snapshotTree(sentinel);
  });

  afterAll(async () => {
    await fs.rm(tmp, { recursive: true, force: true });
  });

  describe.each(drivers)('%s', (driverName, makeDriver) => {
    it.each(cases.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
      const stateDir = await fs.mkdtemp(path.join(tmp, `${driverName}-`));
      const driver = await makeDriver(stateDir);
      const blobs = await c.layers(sentinel);
      let result: unknown = 'contained';
      for (let i = 0; i < blobs.length; i++) {
        const stream = c.gzip ? openLayerStream(streamOf(blobs[i]), 'application/vnd.oci.image.layer.v1.tar+gzip') : streamOf(blobs[i]);
        try {
          await driver.applyLayer(CHAIN(i + 1), i === 0 ? null : CHAIN(i), stream);
        } catch (err) {
          result = err;
          break;
        }
      }
      if (c.expect === 'contained') {
        expect(result).toBe('contained');
        // The rootfs is usable, and what was written stayed in it.
        await driver.create('c', CHAIN(blobs.length));
        const rootfs = await driver.mount('c');
        try {
          expect(rootfs.startsWith(stateDir)).toBe(true);
        } finally {
          await driver.unmount('c');
          await driver.remove('c');
        }
      } else {
        expect(result).toBeInstanceOf(Error);
        expect((result as Error).message).toMatch(c.expect);
        expect(await driver.hasLayer(CHAIN(blobs.length))).toBe(false);
      }
      // No half-applied layer: only fully applied ones remain.
      const layerDirs = (await fs.readdir(path.join(stateDir, 'layers'))).sort();
      expect(layerDirs.filter((n) => n.startsWith('tmp-'))).toEqual([]);
      expect(await snapshotTree(sentinel)).toEqual(before);
      expect(await fs.readFile(path.join(sentinel, 'file'), 'utf8')).toBe('precious\n');
      expect(await fs.readdir(sentinel)).toEqual(['dir', 'file']);
      await fs.rm(stateDir, { recursive: true, force: true });
    });
  });
});
