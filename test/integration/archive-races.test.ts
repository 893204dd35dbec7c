/**
 * Host files stay out of reach of a container that races berthd (Docker's CVE-2018-15664 class):
 * a process in the container swaps a directory for a symlink to a host-only directory, millions
 * of times a second (renameat2 RENAME_EXCHANGE, so the name is always one or the other), while
 * `cp` out (GET archive), `cp` in (PUT archive), `export`, `commit` and `diff` walk that very
 * directory. No archive, layer or change list may ever hold the host victim's name or content,
 * no upload may land in the host victim directory, and the normal copies must still carry the
 * container's own files (so a walk that returns nothing cannot pass).
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fs, readdirSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import zlib from 'node:zlib';
import * as tarStream from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOk, startDaemon, type RunningDaemon } from '../helpers/daemon';
import { isRoot, rootReason, until } from '../helpers/env';
import { makeTempDir, pushBusybox } from '../helpers/fixtures';
import { startRegistry, type RunningRegistry } from '../helpers/registry';

const ROUNDS = 50;
/** Files of the swapped directory, named alike in the container and in the host victim dir. */
const SHARED_NAMES = Array.from({ length: 40 }, (_, i) => `f${i}`);
const CONTAINER_CONTENT = 'container-file\n';

const SWAPPER_C = `
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>
#define RENAME_EXCHANGE (1 << 1)
/* Exchange argv[1] (a directory) and argv[2] (a symlink) forever. */
int main(int argc, char **argv) {
  if (argc != 3) return 2;
  for (;;) {
    if (syscall(SYS_renameat2, AT_FDCWD, argv[1], AT_FDCWD, argv[2], RENAME_EXCHANGE) != 0) { perror("renameat2"); return 1; }
  }
}
`;

/** A request whose body comes back as bytes (tars are binary). */
function rawRequest(socket: string, urlPath: string, init: { method?: string; body?: Buffer } = {}): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = {};
    if (init.body) {
      headers['Content-Type'] = 'application/x-tar';
      headers['Content-Length'] = String(init.body.length);
    }
    const req = http.request({ socketPath: socket, path: urlPath, method: init.method ?? 'GET', headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
    });
    req.setTimeout(60_000, () => req.destroy(new Error(`${init.method ?? 'GET'} ${urlPath}: no answer in time`)));
    req.on('error', reject);
    req.end(init.body);
  });
}

interface Entry {
  name: string;
  type: string;
  content: string;
}

async function tarEntries(data: Buffer): Promise<Entry[]> {
  const out: Entry[] = [];
  const extract = tarStream.extract();
  const done = new Promise<void>((resolve, reject) => {
    extract.on('entry', (header, stream, next) => {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        out.push({ name: header.name.replace(/^\.?\/+/, '').replace(/\/+$/, ''), type: header.type ?? 'file', content: Buffer.concat(chunks).toString('utf8') });
        next();
      });
      stream.on('error', reject);
    });
    extract.on('finish', resolve);
    extract.on('error', reject);
  });
  extract.end(data);
  await done;
  return out;
}

async function tarOf(files: Record<string, string>): Promise<Buffer> {
  const pack = tarStream.pack();
  for (const [name, content] of Object.entries(files)) pack.entry({ name, mode: 0o644 }, content);
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

describe.skipIf(!isRoot)(`archive, export and commit against a racing container (${isRoot ? 'root' : rootReason})`, () => {
  let registry: RunningRegistry;
  let img: string;
  let work: string;
  let toolsDir: string;
  /** Host-only: exists nowhere in any container. */
  let victimDir: string;
  let victimName: string;
  let victimContent: string;
  const daemons: RunningDaemon[] = [];

  beforeAll(async () => {
    registry = await startRegistry();
    img = `${registry.host}/test/races:latest`;
    await pushBusybox(registry.host, 'test/races:latest', { extraFiles: { 'etc/motd': 'image motd\n' } });
    work = await makeTempDir('berth-races-');
    toolsDir = path.join(work, 'tools');
    await fs.mkdir(toolsDir);
    await fs.writeFile(path.join(work, 'swap.c'), SWAPPER_C);
    execFileSync('gcc', ['-static', '-O2', '-o', path.join(toolsDir, 'swap'), path.join(work, 'swap.c')]);
    victimDir = path.join(work, `victim-${randomBytes(6).toString('hex')}`);
    victimName = `host-only-${randomBytes(6).toString('hex')}`;
    victimContent = `host secret ${randomBytes(16).toString('hex')}`;
    await fs.mkdir(victimDir);
    await fs.writeFile(path.join(victimDir, victimName), victimContent);
    for (const name of SHARED_NAMES) await fs.writeFile(path.join(victimDir, name), victimContent);
  }, 120_000);

  afterAll(async () => {
    for (const d of daemons) {
      await d.removeAllContainers();
      await d.stop();
    }
    await registry?.stop();
    if (work) await fs.rm(work, { recursive: true, force: true });
  });

  const victimIntact = () => expect(readdirSync(victimDir).sort()).toEqual([victimName, ...SHARED_NAMES].sort());
  const leaks = (data: Buffer | string) => data.includes(victimContent) || data.includes(victimName);

  for (const driver of ['overlay', 'vfs'] as const) {
    describe(`on ${driver}`, () => {
      let d: RunningDaemon;
      let id: string;

      beforeAll(async () => {
        d = await startDaemon({ storageDriver: driver });
        daemons.push(d);
        expectOk(await d.cli(['pull', '-q', img]));
        // /w/d is a real directory of the container, /w/l a symlink to the host victim dir (which
        // does not exist inside the container); the swapper exchanges the two names forever.
        const files = SHARED_NAMES.map((n) => `/w/d/${n}`).join(' ');
        const script = `mkdir -p /w/d && for f in ${files}; do printf '${CONTAINER_CONTENT.trim()}\\n' > $f; done && ln -s ${victimDir} /w/l && touch /w/ready && exec /tools/swap /w/d /w/l`;
        id = expectOk(await d.cli(['run', '-d', '-v', `${toolsDir}:/tools:ro`, img, 'sh', '-c', script])).stdout.trim();
        await until(
          'the swapper to run',
          async () => {
            const res = await rawRequest(d.socket, `/containers/${id}/archive?path=/w/ready`, { method: 'HEAD' });
            const top = JSON.parse((await d.api(`/containers/${id}/top`)).body || '{}');
            return res.status === 200 && JSON.stringify(top).includes('/tools/swap');
          },
          20_000,
        );
      }, 120_000);

      /** What a round of racing requests did: leaks first, then failures the race caused. */
      const tally = () => ({ leaked: 0, serverErrors: 0, broken: 0, ok: 0, withContainerFiles: 0, errors: [] as string[] });
      const report = (what: string, t: ReturnType<typeof tally>) => {
        console.log(`${driver} ${what}: ${JSON.stringify({ ...t, errors: t.errors.slice(0, 3) })}`);
        expect.soft(t.leaked, `${what}: results holding the host victim`).toBe(0);
        expect
          .soft(
            t.serverErrors + t.broken,
            `${what}: failed requests (${t.errors
              .filter((e) => !e.startsWith('4'))
              .slice(0, 3)
              .join('; ')})`,
          )
          .toBe(0);
      };
      /** One request of a round: counted, never thrown (a broken stream is a finding, not the end of the round). */
      const attempt = async (t: ReturnType<typeof tally>, fn: () => Promise<{ status: number; body: Buffer }>) => {
        try {
          const res = await fn();
          if (leaks(res.body)) t.leaked++;
          if (res.status >= 500) t.serverErrors++;
          if (res.status >= 400) t.errors.push(`${res.status} ${res.body.toString().slice(0, 300)}`);
          return res;
        } catch (err) {
          t.broken++;
          t.errors.push((err as Error).message);
          return null;
        }
      };

      it(`cp out (GET archive) never returns a host file, in ${ROUNDS} tries`, async () => {
        const t = tally();
        for (let i = 0; i < ROUNDS; i++) {
          for (const p of ['/w/d', '/w/d/.', '/w/d/f7']) {
            const res = await attempt(t, () => rawRequest(d.socket, `/containers/${id}/archive?path=${encodeURIComponent(p)}`));
            // 404 or a lone symlink entry: the name may be the symlink's at that instant.
            if (res?.status !== 200) continue;
            t.ok++;
            const entries = await tarEntries(res.body);
            if (entries.some((e) => e.type === 'file' && e.content === CONTAINER_CONTENT)) t.withContainerFiles++;
          }
        }
        report('GET archive', t);
        expect(t.withContainerFiles).toBeGreaterThan(0);
      }, 300_000);

      it(`cp in (PUT archive) never writes into a host directory, in ${ROUNDS} tries`, async () => {
        const t = tally();
        let hostWrites = 0;
        for (let i = 0; i < ROUNDS; i++) {
          // Into the swapped directory itself, or into its parent with entries that pass through it.
          const [dest, prefix] = i % 2 ? ['/w/d', ''] : ['/w', 'd/'];
          const tar = await tarOf({ [`${prefix}up-${i}`]: 'uploaded\n', [`${prefix}sub-${i}/up`]: 'uploaded\n' });
          const res = await attempt(t, () => rawRequest(d.socket, `/containers/${id}/archive?path=${encodeURIComponent(dest)}`, { method: 'PUT', body: tar }));
          if (res?.status === 200) t.ok++;
          if (readdirSync(victimDir).length !== SHARED_NAMES.length + 1) hostWrites++;
        }
        const planted = readdirSync(victimDir).filter((n) => n !== victimName && !SHARED_NAMES.includes(n));
        console.log(`${driver} PUT archive: ${hostWrites} rounds ended with uploads in the host victim dir: ${planted.join(' ')}`);
        // Put the victim dir back first, so the other driver's round starts from the same host state.
        for (const n of planted) await fs.rm(path.join(victimDir, n), { recursive: true, force: true });
        expect(planted, 'uploads that landed in the host victim dir').toEqual([]);
        victimIntact();
        report('PUT archive', t);
        expect(t.ok).toBeGreaterThan(0);
        // What was accepted is in the container, below whichever name the directory has when the
        // walk gets there (it may be caught as the symlink both times: then look again).
        await until('an upload in the container', async () => {
          const res = await rawRequest(d.socket, `/containers/${id}/archive?path=/w`);
          return (await tarEntries(res.body)).some((e) => /^w\/[dl]\/up-\d+$/.test(e.name));
        });
      }, 300_000);

      it(`export never holds a host file, in ${ROUNDS} tries`, async () => {
        const t = tally();
        for (let i = 0; i < ROUNDS; i++) {
          const res = await attempt(t, () => rawRequest(d.socket, `/containers/${id}/export`));
          if (res?.status !== 200) continue;
          t.ok++;
          const entries = await tarEntries(res.body);
          expect(entries.find((e) => e.name === 'etc/motd')?.content).toBe('image motd\n');
          if (entries.some((e) => e.name.startsWith('w/') && e.content === CONTAINER_CONTENT)) t.withContainerFiles++;
        }
        report('export', t);
        expect(t.withContainerFiles).toBeGreaterThan(0);
      }, 300_000);

      it(`commit and diff never take a host file, in ${ROUNDS} tries`, async () => {
        const commits = tally();
        const changes = tally();
        for (let i = 0; i < ROUNDS; i++) {
          const res = await attempt(commits, () => rawRequest(d.socket, `/commit?container=${id}&repo=raced&tag=v${i}`, { method: 'POST' }));
          if (res?.status === 201) commits.ok++;
          const diff = await attempt(changes, () => rawRequest(d.socket, `/containers/${id}/changes`));
          if (diff?.status === 200) changes.ok++;
        }
        // Every committed layer is in the content store: none may hold the victim, and some hold the container's files.
        const blobs = path.join(d.root, 'content', 'blobs', 'sha256');
        for (const hex of await fs.readdir(blobs)) {
          const raw = await fs.readFile(path.join(blobs, hex));
          const data = raw[0] === 0x1f && raw[1] === 0x8b ? zlib.gunzipSync(raw) : raw;
          if (leaks(data)) commits.leaked++;
          if (data.includes(CONTAINER_CONTENT) && /w\/[dl]\/f0/.test(data.toString('latin1'))) commits.withContainerFiles++;
        }
        report('diff', changes);
        report('commit', commits);
        expect(commits.withContainerFiles).toBeGreaterThan(0);
      }, 300_000);
    });
  }
});
