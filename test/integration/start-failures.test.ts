/**
 * Why a container's command could not start, end to end: the launcher reports a reason code
 * (127 not found, 126 not executable, 125 anything else), runtime.native turns 127 and 126 into a
 * StartFailure, the API answer carries its kind and reason beside Docker's message, inspect shows
 * dockerd's exit code, and `berth run` exits as `docker run` does — without reading the message.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import * as tar from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOk, startDaemon, type RunningDaemon } from '../helpers/daemon';
import { isRoot, rootReason } from '../helpers/env';
import { makeTempDir, pushBusybox } from '../helpers/fixtures';
import { startRegistry, type RunningRegistry } from '../helpers/registry';

describe.skipIf(!isRoot)(`start failures (${isRoot ? 'root' : rootReason})`, () => {
  let registry: RunningRegistry;
  let daemon: RunningDaemon;
  let work: string;
  let img: string;

  const cli = (args: string[]) => daemon.cli(args, { timeoutMs: 120_000 });

  /** An image of one file, /garbage: executable bits, but no format the kernel can run. */
  async function garbageImage(): Promise<string> {
    const pack = tar.pack();
    pack.entry({ name: 'garbage', mode: 0o755 }, 'this is not a program\n');
    pack.finalize();
    const file = path.join(work, 'garbage.tar');
    const chunks: Buffer[] = [];
    for await (const c of pack) chunks.push(c as Buffer);
    await fs.writeFile(file, Buffer.concat(chunks));
    expectOk(await cli(['import', file, 'start-failures/garbage:1']));
    return 'start-failures/garbage:1';
  }

  beforeAll(async () => {
    registry = await startRegistry();
    work = await makeTempDir('berth-start-failures-');
    img = `${registry.host}/test/busybox:latest`;
    await pushBusybox(registry.host, 'test/busybox:latest', { cmd: ['sh'] });
    daemon = await startDaemon();
    expectOk(await cli(['pull', '-q', img]));
  }, 180_000);

  afterAll(async () => {
    if (daemon) {
      await daemon.removeAllContainers();
      await daemon.stop();
    }
    await registry?.stop();
    if (work) await fs.rm(work, { recursive: true, force: true });
  });

  it('berth run exits 127 for a command that is not there, by path or by PATH search, and leaves nothing', async () => {
    for (const cmd of ['/nonexistent', 'no-such-command']) {
      const res = await cli(['run', '--rm', '--network', 'none', img, cmd]);
      expect({ cmd, code: res.code }).toEqual({ cmd, code: 127 });
      expect(res.stderr).toMatch(new RegExp(`^berth: Error response from daemon: container [0-9a-f]{64}: exec: "${cmd}"`));
    }
    expect(expectOk(await cli(['ps', '-aq'])).stdout).toBe('');
  });

  it('berth run exits 126 for a file that cannot be run: no execute bit, or a directory', async () => {
    for (const cmd of ['/etc/passwd', '/etc']) {
      const res = await cli(['run', '--rm', '--network', 'none', img, cmd]);
      expect({ cmd, code: res.code }).toEqual({ cmd, code: 126 });
      expect(res.stderr).toMatch(/[Pp]ermission denied/);
    }
  });

  it('berth run exits 125 for any other failure: an exec the kernel refuses for its format, a bad option', async () => {
    const garbage = await garbageImage();
    const res = await cli(['run', '--rm', '--network', 'none', garbage, '/garbage']);
    expect(res.code).toBe(125);
    expect(res.stderr).toMatch(/exec: "\/garbage": Exec format error/);
    const badOption = await cli(['run', '--rm', '--no-such-option', img, 'true']);
    expect(badOption.code).toBe(125);
  });

  it("the API answers a StartFailure with its kind and reason beside the message; inspect keeps dockerd's exit code", async () => {
    const cases = [
      { cmd: '/nonexistent', reason: 'command-not-found', exitCode: 127 },
      { cmd: '/etc/passwd', reason: 'command-not-executable', exitCode: 126 },
    ];
    for (const { cmd, reason, exitCode } of cases) {
      const created = await daemon.api('/containers/create', { method: 'POST', body: { Image: img, Cmd: [cmd], HostConfig: { NetworkMode: 'none' } } });
      expect(created.status).toBe(201);
      const id = created.json.Id as string;
      const started = await daemon.api(`/containers/${id}/start`, { method: 'POST' });
      expect({ cmd, status: started.status, body: started.json }).toEqual({
        cmd,
        status: 400,
        body: { message: expect.stringContaining(`exec: "${cmd}"`), kind: 'StartFailure', reason },
      });
      const state = (await daemon.api(`/containers/${id}/json`)).json.State;
      expect({ cmd, state }).toMatchObject({ cmd, state: { Status: 'created', Running: false, ExitCode: exitCode, Error: expect.stringContaining(cmd) } });
    }
    // Other failures keep Docker's plain body: no kind, no reason.
    const garbage = await daemon.api('/containers/create', { method: 'POST', body: { Image: 'start-failures/garbage:1', Cmd: ['/garbage'], HostConfig: { NetworkMode: 'none' } } });
    const started = await daemon.api(`/containers/${garbage.json.Id}/start`, { method: 'POST' });
    expect(started.status).toBe(500);
    expect(Object.keys(started.json)).toEqual(['message']);
  });
});
