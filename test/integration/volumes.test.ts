/**
 * Volumes end to end (root): named volumes that outlive containers and are seeded from the image,
 * anonymous volumes for the image's VOLUMEs (removed by `rm -v`), --mount and --tmpfs, and the
 * refusal to remove a volume in use. Nothing stays mounted afterwards.
 */
import { execFile } from 'node:child_process';
import { existsSync, promises as fs, readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOk, removeAllAndStop, startDaemon, type RunningDaemon } from '../helpers/daemon';
import { isRoot, rootReason } from '../helpers/env';
import { buildBusyboxLayout, makeTempDir, pushImage } from '../helpers/fixtures';
import { startRegistry, type RunningRegistry } from '../helpers/registry';

const run = promisify(execFile);

describe.skipIf(!isRoot)(`volumes, --mount and --tmpfs (${isRoot ? 'root' : rootReason})`, () => {
  let registry: RunningRegistry;
  let daemon: RunningDaemon;
  let img: string;
  let work: string;

  beforeAll(async () => {
    registry = await startRegistry();
    work = await makeTempDir('berth-vol-');
    const layout = await buildBusyboxLayout(path.join(work, 'layout'), {
      extraFiles: { 'data/seed.txt': 'from the image\n', 'anon/keep.txt': 'anon seed\n' },
    });
    await run('umoci', ['config', '--image', layout.ref, '--config.volume', '/anon']);
    await pushImage(layout.ref, registry.host, 'test/vol:latest');
    img = `${registry.host}/test/vol:latest`;
    daemon = await startDaemon({ config: { isolators: ['namespaces', 'cgroups'] } });
    expectOk(await daemon.cli(['pull', '-q', img]));
  });

  afterAll(async () => {
    if (daemon) expect(await removeAllAndStop(daemon)).toEqual([]);
    await registry?.stop();
    if (work) await fs.rm(work, { recursive: true, force: true });
  });

  const cli = (args: string[]) => daemon.cli(args);
  const volumes = async () =>
    expectOk(await cli(['volume', 'ls', '-q']))
      .stdout.split('\n')
      .filter(Boolean);

  it('a named volume is created on first use, seeded from the image, and outlives its container', async () => {
    const out = expectOk(await cli(['run', '--name', 'writer', '-v', 'keep:/data', img, 'sh', '-c', 'cat /data/seed.txt; echo kept > /data/new.txt'])).stdout;
    expect(out).toBe('from the image\n');
    expectOk(await cli(['rm', '-v', 'writer']));
    expect(await volumes()).toContain('keep');
    const info = JSON.parse(expectOk(await cli(['volume', 'inspect', 'keep'])).stdout)[0];
    expect(info.Mountpoint).toBe(path.join(daemon.root, 'volumes', 'keep', '_data'));
    expect(readFileSync(path.join(info.Mountpoint, 'new.txt'), 'utf8')).toBe('kept\n');
    const again = expectOk(
      await cli([
        'run',
        '--rm',
        '--mount',
        'type=volume,source=keep,target=/elsewhere,readonly',
        img,
        'sh',
        '-c',
        'cat /elsewhere/new.txt; touch /elsewhere/x 2>/dev/null && echo writable || echo readonly',
      ]),
    );
    expect(again.stdout).toBe('kept\nreadonly\n');
  });

  it('refuses to remove a volume in use, naming the container', async () => {
    expectOk(await cli(['volume', 'create', 'busy']));
    expectOk(await cli(['create', '--name', 'holder', '-v', 'busy:/b', img, 'true']));
    const res = await cli(['volume', 'rm', 'busy']);
    expect(res.code).not.toBe(0);
    expect(res.stderr).toMatch(/volume is in use.*holder/);
    expectOk(await cli(['rm', 'holder']));
    expectOk(await cli(['volume', 'rm', 'busy']));
    expect(await volumes()).not.toContain('busy');
  });

  it("gives the image's VOLUME an anonymous volume, removed with rm -v", async () => {
    const before = await volumes();
    expectOk(await cli(['run', '--name', 'anon', img, 'sh', '-c', 'cat /anon/keep.txt; grep " /anon " /proc/mounts | wc -l']));
    expect(expectOk(await cli(['logs', 'anon'])).stdout).toBe('anon seed\n1\n');
    const made = (await volumes()).filter((v) => !before.includes(v));
    expect(made).toHaveLength(1);
    expect(made[0]).toMatch(/^[a-f0-9]{64}$/);
    expectOk(await cli(['rm', '-v', 'anon']));
    expect(await volumes()).not.toContain(made[0]);
    expect(existsSync(path.join(daemon.root, 'volumes', made[0]))).toBe(false);
  });

  it('--tmpfs mounts a tmpfs with its options', async () => {
    const res = expectOk(await cli(['run', '--rm', '--tmpfs', '/scratch:size=1m,mode=0700', img, 'sh', '-c', 'grep " /scratch " /proc/mounts; echo x > /scratch/f && cat /scratch/f']));
    expect(res.stdout).toMatch(/^tmpfs \/scratch tmpfs rw,nosuid,nodev,noexec,relatime,size=1024k,mode=700/);
    expect(res.stdout).toContain('x\n');
  });

  it('--mount type=bind binds a host directory; bad mounts are clear errors', async () => {
    const dir = await makeTempDir('berth-bind-');
    try {
      await fs.writeFile(path.join(dir, 'host.txt'), 'from host\n');
      expect(expectOk(await cli(['run', '--rm', '--mount', `type=bind,source=${dir},target=/h`, img, 'cat', '/h/host.txt'])).stdout).toBe('from host\n');
      const bad = await cli(['run', '--rm', '--mount', 'type=bind,source=/no/such/dir,target=/h', img, 'true']);
      expect(bad.stderr).toContain('/no/such/dir');
      const badName = await cli(['run', '--rm', '-v', 'bad name:/x', img, 'true']);
      expect(badName.code).not.toBe(0);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });

  it('prune removes unused anonymous volumes; -a all unused ones', async () => {
    expectOk(await cli(['create', '--name', 'pr', img, 'true']));
    expectOk(await cli(['rm', 'pr'])); // without -v: its anonymous volume stays
    const anon = (await volumes()).filter((v) => /^[a-f0-9]{64}$/.test(v));
    expect(anon.length).toBeGreaterThan(0);
    expectOk(await cli(['volume', 'prune', '-f']));
    expect((await volumes()).filter((v) => /^[a-f0-9]{64}$/.test(v))).toEqual([]);
    expect(await volumes()).toContain('keep');
    expectOk(await cli(['volume', 'prune', '-a', '-f']));
    expect(await volumes()).toEqual([]);
  });
});
