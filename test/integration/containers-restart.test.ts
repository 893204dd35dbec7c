/**
 * Containers outlive berthd: after `kill -9` of the daemon the container's monitor keeps it
 * running and logging; a berthd restarted on the same root adopts it (listed as running, stop and
 * wait work) and learns the exit status of a container that ended while no daemon was there.
 */
import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mountsUnder, expectOk, startDaemon, type RunningDaemon } from '../helpers/daemon';
import { isRoot, rootReason, until } from '../helpers/env';
import { pushBusybox } from '../helpers/fixtures';
import { startRegistry, type RunningRegistry } from '../helpers/registry';

/** The tick numbers in a log, in order. */
const ticks = (text: string) =>
  text
    .split('\n')
    .filter(Boolean)
    .map((l) => Number(/^tick (\d+)$/.exec(l)?.[1] ?? NaN));

const TICKER = 'i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done';

describe.skipIf(!isRoot)(`containers across a berthd restart (${isRoot ? 'root' : rootReason})`, () => {
  let registry: RunningRegistry;
  let img: string;
  let first: RunningDaemon;
  let second: RunningDaemon | undefined;

  beforeAll(async () => {
    registry = await startRegistry();
    img = `${registry.host}/test/restart:latest`;
    await pushBusybox(registry.host, 'test/restart:latest');
    first = await startDaemon();
    expectOk(await first.cli(['pull', '-q', img]));
  });

  afterAll(async () => {
    const live = second ?? first;
    if (live) {
      const ids = (await live.cli(['ps', '-a', '-q', '--no-trunc']).catch(() => ({ stdout: '' }))).stdout.split('\n').filter(Boolean);
      if (ids.length) await live.cli(['rm', '-f', ...ids]);
    }
    await second?.stop();
    await first?.stop(); // removes the shared root (it lives in the first daemon's temp dir)
    await registry?.stop();
  });

  it('keeps running and logging through kill -9 of berthd, and is adopted after the restart', async () => {
    const cli = (args: string[]) => first.cli(args);
    const ticker = expectOk(await cli(['run', '-d', '--name', 'ticker', img, 'sh', '-c', TICKER])).stdout.trim();
    const seven = expectOk(await cli(['run', '-d', '--name', 'seven', img, 'sh', '-c', 'sleep 1; exit 7'])).stdout.trim();
    const autoRemoved = expectOk(await cli(['run', '-d', '--rm', '--name', 'gone', img, 'sh', '-c', 'sleep 1'])).stdout.trim();
    await until('a few ticks', async () => ticks((await cli(['logs', 'ticker'])).stdout).length >= 3);
    const before = JSON.parse(expectOk(await cli(['inspect', 'ticker'])).stdout)[0];
    const pid: number = before.State.Pid;

    await first.kill9();
    const lastBefore = ticks(
      (await fs.readFile(path.join(first.root, 'containers', ticker, 'container.log'), 'utf8'))
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l).log)
        .join(''),
    ).at(-1)!;
    // Long enough for `seven` to exit and for the ticker to log some lines with no daemon around.
    await new Promise((r) => setTimeout(r, 2000));
    expect(existsSync(`/proc/${pid}`), 'the container process outlived berthd').toBe(true);

    second = await startDaemon({ root: first.root });
    const again = (args: string[]) => second!.cli(args);
    const ps = expectOk(await again(['ps'])).stdout;
    expect(ps).toMatch(/Up .*ticker/);
    expect(ps).not.toContain('seven');
    const after = JSON.parse(expectOk(await again(['inspect', 'ticker'])).stdout)[0];
    expect(after.State.Running).toBe(true);
    expect(after.State.Pid).toBe(pid);
    expect(after.State.StartedAt).toBe(before.State.StartedAt);

    // Nothing lost while berthd was down: the ticks run on without a gap.
    const seen = ticks(expectOk(await again(['logs', 'ticker'])).stdout);
    expect(seen.at(-1)!).toBeGreaterThan(lastBefore + 4);
    expect(seen).toEqual(seen.map((_, i) => i));

    // The container that ended while no berthd was there has its real status.
    expect(expectOk(await again(['ps', '-a'])).stdout).toMatch(/Exited \(7\).*seven/);
    expect(expectOk(await again(['wait', 'seven'])).stdout).toBe('7\n');
    expect(JSON.parse(expectOk(await again(['inspect', seven])).stdout)[0].State.ExitCode).toBe(7);

    // An AutoRemove container that ended meanwhile is removed once berthd learns of it.
    await until('the --rm container to be removed', async () => !existsSync(path.join(first.root, 'containers', autoRemoved)));
    expect(expectOk(await again(['ps', '-a'])).stdout).not.toContain('gone');

    // The adopted container is fully manageable: follow, stop, wait.
    const waiting = again(['wait', 'ticker']);
    expectOk(await again(['stop', '-t', '1', 'ticker']));
    expect(expectOk(await waiting).stdout).toBe('137\n');
    expect(existsSync(`/proc/${pid}`)).toBe(false);
    expect(expectOk(await again(['ps', '-a'])).stdout).toMatch(/Exited \(137\).*ticker/);
    expect(expectOk(await again(['wait', 'ticker'])).stdout).toBe('137\n');
    const followed = expectOk(await again(['logs', '-f', 'ticker']));
    expect(ticks(followed.stdout).length).toBeGreaterThan(seen.length);

    expectOk(await again(['rm', 'ticker', 'seven']));
    expect(mountsUnder(first.root)).toEqual([]);
    expect(existsSync(path.join(first.root, 'containers', ticker))).toBe(false);
    expect(existsSync(path.join(first.root, 'containers', seven))).toBe(false);
  });
});
