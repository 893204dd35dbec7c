import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { mountsUnder, storageConformance } from '../conformance/storage';
import { chainIds, streamOf, tarOf } from '../helpers/layer-fixtures';
import { isRoot, rootReason } from '../helpers/env';
import { syscalls } from '../../core/sys/syscalls';
import { OverlayDriver } from '../../plugins/storage-overlay/driver';

describe.skipIf(!isRoot)(`overlay storage (${rootReason})`, () => {
  storageConformance('overlay', async (stateDir) => {
    const driver = new OverlayDriver(stateDir, syscalls, { mountOptions: [] });
    await driver.init();
    await driver.probe();
    return driver;
  });
});

describe.skipIf(!isRoot)(`overlay with many layers (${rootReason})`, () => {
  it('mounts a 130-layer image (lowerdir longer than a page) and creates containers fast', async () => {
    const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'berth-overlay-130-'));
    try {
      const driver = new OverlayDriver(path.join(tmp, 'state'), syscalls, { mountOptions: [] });
      await driver.init();
      const diffIds: string[] = [];
      const tars: Buffer[] = [];
      for (let i = 0; i < 130; i++) {
        const entries = [{ name: `layer-${i}`, content: `${i}\n` }];
        if (i > 0) entries.push({ name: `.wh.layer-${i - 1}`, content: '' });
        const buf = await tarOf(entries);
        tars.push(buf);
        diffIds.push(`sha256:${createHash('sha256').update(buf).digest('hex')}`);
      }
      const chains = chainIds(diffIds);
      await Promise.all(tars.map((buf, i) => driver.applyLayer(chains[i], i === 0 ? null : chains[i - 1], streamOf(buf))));
      const times: number[] = [];
      for (let n = 0; n < 5; n++) {
        const start = process.hrtime.bigint();
        await driver.create(`c${n}`, chains[129]);
        const rootfs = await driver.mount(`c${n}`);
        times.push(Number(process.hrtime.bigint() - start) / 1e6);
        // Each layer whited out its parent's file: only the top one is visible.
        expect(await fs.readdir(rootfs)).toEqual(['layer-129']);
      }
      // Small image (1 layer): the direct mount(2) path.
      const small: number[] = [];
      for (let n = 0; n < 5; n++) {
        const start = process.hrtime.bigint();
        await driver.create(`s${n}`, chains[0]);
        await driver.mount(`s${n}`);
        small.push(Number(process.hrtime.bigint() - start) / 1e6);
      }
      const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
      console.log(`overlay create+mount: 130 layers median ${median(times).toFixed(1)} ms; 1 layer median ${median(small).toFixed(1)} ms`);
      for (let n = 0; n < 5; n++) {
        await driver.remove(`c${n}`);
        await driver.remove(`s${n}`);
      }
      expect(await mountsUnder(tmp)).toEqual([]);
    } finally {
      for (const m of await mountsUnder(tmp)) syscalls.umount2(m, 2);
      await fs.rm(tmp, { recursive: true, force: true });
    }
  });
});

describe.skipIf(!isRoot)(`overlay ephemeral mounts (${rootReason})`, () => {
  it('mounts an ephemeral layer volatile, and the same layer again afterwards', async () => {
    const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'berth-overlay-volatile-'));
    try {
      const driver = new OverlayDriver(path.join(tmp, 'state'), syscalls, { mountOptions: [] });
      await driver.init();
      const [chain] = chainIds([`sha256:${createHash('sha256').update('base').digest('hex')}`]);
      await driver.applyLayer(chain, null, streamOf(await tarOf([{ name: 'base', content: 'b\n' }])));
      await driver.create('c1', chain);
      const optionsOf = async (rootfs: string) => {
        const line = (await fs.readFile('/proc/self/mountinfo', 'utf8')).split('\n').find((l) => l.split(' ')[4] === rootfs);
        return line?.split(' - ')[1]?.split(' ')[2]?.split(',') ?? [];
      };
      // The kernel shows the option as fsync=volatile (6.x) or volatile.
      const isVolatile = (opts: string[]) => opts.includes('volatile') || opts.includes('fsync=volatile');
      const rootfs = await driver.mount('c1', { ephemeral: true });
      expect(isVolatile(await optionsOf(rootfs)), (await optionsOf(rootfs)).join(',')).toBe(true);
      await fs.writeFile(path.join(rootfs, 'written'), 'w\n');
      await driver.unmount('c1');
      // overlayfs refuses a workdir a volatile mount used (work/incompat/volatile) until the
      // driver clears it: a later cp, export or commit still mounts the layer.
      const again = await driver.mount('c1');
      expect(isVolatile(await optionsOf(again))).toBe(false);
      expect(await fs.readFile(path.join(again, 'written'), 'utf8')).toBe('w\n');
      expect(await fs.readFile(path.join(again, 'base'), 'utf8')).toBe('b\n');
      await driver.unmount('c1');
      await driver.remove('c1');
      await driver.close();
      expect(await mountsUnder(tmp)).toEqual([]);
    } finally {
      for (const m of await mountsUnder(tmp)) syscalls.umount2(m, 2);
      await fs.rm(tmp, { recursive: true, force: true });
    }
  });
});
