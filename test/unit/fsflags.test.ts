import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isTopDir, markTopDir } from '../../core/sys/fsflags';
import { syscalls } from '../../core/sys/syscalls';
import { OverlayDriver } from '../../plugins/storage-overlay/driver';
import { VfsDriver } from '../../plugins/storage-vfs/driver';

const base = await fs.mkdtemp(path.join(os.tmpdir(), 'berth-fsflags-'));
afterAll(() => fs.rm(base, { recursive: true, force: true }));
// `stat -f` names ext2, ext3 and ext4 alike; those are the filesystems with the Orlov allocator.
const fsType = execFileSync('stat', ['-f', '-c', '%T', base], { encoding: 'utf8' }).trim();
const onExt = fsType.startsWith('ext');

/** The flags lsattr(1) (e2fsprogs, not berth) reads for a directory, e.g. `-------------Te-------`. */
const lsattr = (dir: string) => execFileSync('lsattr', ['-d', dir], { encoding: 'utf8' }).split(/\s+/)[0];

describe.skipIf(!onExt)(`FS_TOPDIR_FL on ${fsType} (ext4 only: other filesystems have no Orlov allocator)`, () => {
  it('marks a directory as chattr +T does, and says so', async () => {
    const dir = await fs.mkdtemp(path.join(base, 'd-'));
    expect(isTopDir(dir)).toBe(false);
    expect(lsattr(dir)).not.toContain('T');
    expect(markTopDir(dir)).toBe(true);
    expect(lsattr(dir)).toContain('T');
    expect(isTopDir(dir)).toBe(true);
    expect(markTopDir(dir)).toBe(true); // again: nothing changes
  });

  it('the overlay and vfs drivers mark their layer and container folders at init', async () => {
    const overlay = new OverlayDriver(path.join(base, 'overlay'), syscalls, { mountOptions: [] });
    await overlay.init();
    const vfs = new VfsDriver(path.join(base, 'vfs'));
    await vfs.init();
    for (const dir of ['overlay/layers', 'overlay/containers', 'vfs/layers', 'vfs/containers']) expect(lsattr(path.join(base, dir)), dir).toContain('T');
    expect(lsattr(path.join(base, 'overlay/l'))).not.toContain('T');
  });
});

describe('markTopDir where it cannot apply', () => {
  it('answers false for a missing folder and for a filesystem without the flag, changing nothing', async () => {
    expect(markTopDir(path.join(base, 'missing'))).toBe(false);
    expect(isTopDir(path.join(base, 'missing'))).toBe(false);
    if (fsType !== 'tmpfs' && execFileSync('stat', ['-f', '-c', '%T', '/dev/shm'], { encoding: 'utf8' }).trim() === 'tmpfs') {
      const dir = await fs.mkdtemp('/dev/shm/berth-fsflags-');
      try {
        expect(markTopDir(dir)).toBe(false);
        expect(isTopDir(dir)).toBe(false);
      } finally {
        await fs.rmdir(dir);
      }
    }
  });
});
