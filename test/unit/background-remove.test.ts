/**
 * Removals that answer before every file is deleted: the storage drivers' BackgroundRemover and
 * the container store's state dirs. What they leave mid-way (a crash) is deleted at the next open.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BackgroundRemover } from '../../core/layers/util';
import { ContainerStore, type ContainerRecord } from '../../core/containers/record';
import { isRoot, rootReason } from '../helpers/env';
import { makeTempDir } from '../helpers/fixtures';

let dir: string;
beforeEach(async () => {
  dir = await makeTempDir('berth-bgrm-');
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

function tree(root: string, depth: number): void {
  let p = root;
  for (let i = 0; i < depth; i++) {
    p = path.join(p, `d${i}`);
    fs.mkdirSync(p, { recursive: true });
    fs.writeFileSync(path.join(p, 'f'), 'x');
    fs.symlinkSync('/etc/passwd', path.join(p, 'link'));
  }
}

describe('BackgroundRemover', () => {
  it('deletes discarded trees, and settled() waits for all of them', async () => {
    const remover = new BackgroundRemover({ dir: path.join(dir, 'quarantine') });
    const doomed = [0, 1, 2].map((i) => path.join(dir, `tmp-rm-${i}`));
    for (const d of doomed) tree(d, 30);
    for (const d of doomed) remover.discard(d);
    await remover.settled();
    expect(fs.readdirSync(dir)).toEqual([]);
    // Symlinks were unlinked, not followed.
    expect(fs.existsSync('/etc/passwd')).toBe(true);
  });

  it('settled() also waits for trees discarded while it waits', async () => {
    const remover = new BackgroundRemover({ dir: path.join(dir, 'quarantine') });
    tree(path.join(dir, 'tmp-rm-a'), 20);
    tree(path.join(dir, 'tmp-rm-b'), 20);
    remover.discard(path.join(dir, 'tmp-rm-a'));
    const settled = remover.settled();
    remover.discard(path.join(dir, 'tmp-rm-b'));
    await settled;
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it.skipIf(!isRoot)(`quarantines what rm cannot delete (an immutable file)${isRoot ? '' : ` (skipped: ${rootReason})`}`, async () => {
    const quarantine = path.join(dir, 'quarantine');
    const remover = new BackgroundRemover({ dir: quarantine });
    const doomed = path.join(dir, 'tmp-rm-stuck');
    tree(doomed, 3);
    const stuck = path.join(doomed, 'd0', 'immutable');
    fs.writeFileSync(stuck, 'x');
    execFileSync('chattr', ['+i', stuck]);
    try {
      remover.discard(doomed);
      await remover.settled();
      expect(fs.existsSync(doomed)).toBe(false);
      const [moved] = fs.readdirSync(quarantine);
      expect(moved).toMatch(/^tmp-rm-stuck-/);
      execFileSync('chattr', ['-i', path.join(quarantine, moved, 'd0', 'immutable')]);
    } finally {
      if (fs.existsSync(stuck)) execFileSync('chattr', ['-i', stuck]);
    }
  });
});

describe('ContainerStore removal', () => {
  const id = 'a'.repeat(64);
  const rec = { Id: id, Name: '/c1', Config: {}, HostConfig: {}, State: {} } as unknown as ContainerRecord;

  it('delete() takes the state dir away at once and deletes it after', async () => {
    const store = new ContainerStore(dir);
    await store.open();
    await store.save(rec);
    fs.writeFileSync(path.join(store.stateDir(id), 'container.log'), 'log');
    await store.delete(id);
    expect(fs.existsSync(store.stateDir(id))).toBe(false);
    expect(store.find(id)).toBeUndefined();
    const containers = path.join(dir, 'containers');
    for (let i = 0; i < 100 && fs.readdirSync(containers).length; i++) await new Promise((r) => setTimeout(r, 20));
    expect(fs.readdirSync(containers)).toEqual([]);
  });

  it('open() deletes the state dirs of removals a crash interrupted, and keeps live records', async () => {
    const containers = path.join(dir, 'containers');
    fs.mkdirSync(path.join(containers, `removed-${'b'.repeat(64)}`), { recursive: true });
    fs.writeFileSync(path.join(containers, `removed-${'b'.repeat(64)}`, 'config.json'), JSON.stringify({ ...rec, Id: 'b'.repeat(64) }));
    fs.mkdirSync(path.join(containers, id));
    fs.writeFileSync(path.join(containers, id, 'config.json'), JSON.stringify(rec));
    const store = new ContainerStore(dir);
    await store.open();
    expect(fs.readdirSync(containers)).toEqual([id]);
    expect(store.list().map((r) => r.Id)).toEqual([id]);
  });
});
