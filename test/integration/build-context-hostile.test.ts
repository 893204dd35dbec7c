/**
 * Hostile build contexts against a real berthd (issue 12): a `.dockerignore` that is a symlink to
 * a host file (whose secret must never show in any output), one that is a symlink to a host FIFO
 * (builds must end, and the daemon keep answering meanwhile), a context holding a FIFO and a
 * symlink to /dev/zero, and a FIFO `.dockerignore` in a directory the CLI sends.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import * as tar from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, type ApiResponse, type RunningDaemon } from '../helpers/daemon';
import { isRoot, rootReason } from '../helpers/env';
import { makeTempDir } from '../helpers/fixtures';

interface ContextEntry {
  name: string;
  type?: 'file' | 'symlink' | 'fifo';
  content?: string;
  linkname?: string;
}

/** A context tar as a client would send it, with any entry types. */
async function contextTar(entries: ContextEntry[]): Promise<Buffer> {
  const pack = tar.pack();
  for (const e of entries) {
    const type = e.type ?? 'file';
    const header = { name: e.name, type, mode: 0o644, uid: 0, gid: 0, linkname: e.linkname };
    if (type === 'file') pack.entry(header, e.content ?? '');
    else pack.entry(header);
  }
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** `what` settles within `ms`, or the test fails saying what hung. */
function within<T>(ms: number, what: string, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms)));
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

describe.skipIf(!isRoot)(`hostile build contexts (${isRoot ? 'root' : rootReason})`, () => {
  let daemon: RunningDaemon;
  let work: string;
  let victim: string;
  let fifo: string;
  const secret = `s3cret-${randomBytes(8).toString('hex')}`;

  beforeAll(async () => {
    work = await makeTempDir('berth-ctx-');
    victim = path.join(work, 'victim');
    // A line that is a bad pattern (its regex error would quote it), and lines that would steer the build.
    await fs.writeFile(victim, `[z-a]${secret}\n${secret}\nDockerfile\n*\n`);
    fifo = path.join(work, 'fifo');
    execFileSync('mkfifo', [fifo]);
    daemon = await startDaemon();
  }, 60_000);

  afterAll(async () => {
    await daemon?.stop();
    if (work) await fs.rm(work, { recursive: true, force: true });
  });

  const build = (body: Buffer, tag: string): Promise<ApiResponse> => daemon.api(`/build?t=${tag}`, { method: 'POST', body, headers: { 'Content-Type': 'application/x-tar' } });
  const expectNoSecret = (...texts: string[]) => {
    for (const t of texts) expect(t).not.toContain(secret);
  };

  it('never reads a host file through a .dockerignore symlink', async () => {
    const body = await contextTar([
      { name: 'Dockerfile', content: 'FROM scratch\nCOPY . /ctx/\n' },
      { name: 'kept.txt', content: 'kept' },
      { name: '.dockerignore', type: 'symlink', linkname: victim },
    ]);
    const res = await within(30_000, 'the build', build(body, 'ctx-ignore-link'));
    expectNoSecret(res.body, daemon.logs());
    // Resolved inside the context, as Docker scopes it, the link names no file: nothing is ignored.
    expect(res.body).toContain('Successfully built');
    const relative = await contextTar([
      { name: 'Dockerfile', content: 'FROM scratch\nCOPY . /ctx/\n' },
      { name: '.dockerignore', type: 'symlink', linkname: `../../../../../../../..${victim}` },
    ]);
    const res2 = await within(30_000, 'the build', build(relative, 'ctx-ignore-link2'));
    expectNoSecret(res2.body, daemon.logs());
    expect(res2.body).toContain('Successfully built');
  }, 60_000);

  it('ends builds whose .dockerignore links to a host FIFO, and keeps answering meanwhile', async () => {
    const body = await contextTar([
      { name: 'Dockerfile', content: 'FROM scratch\nCOPY . /ctx/\n' },
      { name: '.dockerignore', type: 'symlink', linkname: fifo },
    ]);
    // More builds than libuv has pool threads: a blocking open of the FIFO would take them all.
    const builds = Array.from({ length: 6 }, (_, i) => build(body, `ctx-fifo-${i}`));
    const started = Date.now();
    const ping = await within(5_000, 'GET /_ping during the builds', daemon.api('/_ping'));
    expect(ping.status).toBe(200);
    const images = await within(5_000, 'GET /images/json during the builds', daemon.api('/images/json'));
    expect(images.status).toBe(200);
    const df = await within(10_000, 'GET /system/df during the builds', daemon.api('/system/df'));
    expect(df.status).toBe(200);
    for (const res of await within(30_000, 'the builds', Promise.all(builds))) {
      expect(res.body).toMatch(/Successfully built|not a regular file/);
    }
    console.log(`6 builds with a FIFO .dockerignore link ended in ${Date.now() - started} ms`);
  }, 60_000);

  it('builds a context holding a FIFO and a symlink to /dev/zero without reading either', async () => {
    const body = await contextTar([
      { name: 'Dockerfile', content: 'FROM scratch\nCOPY . /ctx/\n' },
      { name: 'pipe', type: 'fifo' },
      { name: 'zero', type: 'symlink', linkname: '/dev/zero' },
      { name: 'file.txt', content: 'data' },
    ]);
    const res = await within(30_000, 'the build', build(body, 'ctx-fifo-entry'));
    expect(res.body).toContain('Successfully built');
    const direct = await contextTar([
      { name: 'Dockerfile', content: 'FROM scratch\nCOPY zero /z\n' },
      { name: 'zero', type: 'symlink', linkname: '/dev/zero' },
    ]);
    const res2 = await within(30_000, 'the build', build(direct, 'ctx-zero'));
    expect(res2.body).toMatch(/forbidden path outside the build context: zero/);
  }, 60_000);

  it('the CLI refuses a FIFO .dockerignore instead of hanging, and skips FIFOs in the context', async () => {
    const dir = path.join(work, 'cli-ctx');
    await fs.mkdir(dir);
    await fs.writeFile(path.join(dir, 'Dockerfile'), 'FROM scratch\nCOPY . /ctx/\n');
    execFileSync('mkfifo', [path.join(dir, '.dockerignore')]);
    const res = await daemon.cli(['build', '-t', 'ctx-cli', dir], { timeoutMs: 20_000 });
    expect(res.code).not.toBe(0);
    expect(res.stderr).toContain('.dockerignore is not a regular file');
    await fs.rm(path.join(dir, '.dockerignore'));
    execFileSync('mkfifo', [path.join(dir, 'pipe')]);
    const ok = await daemon.cli(['build', '-t', 'ctx-cli', dir], { timeoutMs: 20_000 });
    expect(ok.code, ok.stderr).toBe(0);
  }, 60_000);
});
