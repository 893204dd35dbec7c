/**
 * `berth build` end to end against a real berthd, with a busybox base image made by umoci and
 * pushed by skopeo to Debian's docker-registry: a multi-stage Dockerfile (ARG, ENV, WORKDIR,
 * COPY, RUN, USER, CMD) whose image runs and prints what the Dockerfile put there; history; the
 * build cache (a no-change rebuild, timed; one changed file re-runs from its step on); a failing
 * RUN; COPY --chown; .dockerignore; escapes out of the context refused; POST /build with a tar
 * body as the docker CLI's classic builder sends it, and the real docker CLI when installed.
 */
import { execFile } from 'node:child_process';
import { existsSync, promises as fs, readdirSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import * as tar from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mountsUnder, expectOk, startDaemon, type RunningDaemon } from '../helpers/daemon';
import { isRoot, rootReason } from '../helpers/env';
import { makeTempDir, pushBusybox } from '../helpers/fixtures';
import { startRegistry, type RunningRegistry } from '../helpers/registry';

const execFileP = promisify(execFile);
const DOCKER = '/usr/local/bin/docker';

async function writeTree(dir: string, files: Record<string, string>): Promise<void> {
  for (const [rel, content] of Object.entries(files)) {
    await fs.mkdir(path.dirname(path.join(dir, rel)), { recursive: true });
    await fs.writeFile(path.join(dir, rel), content);
  }
}

/** A context directory as the plain tar the docker CLI sends (owners 0:0). */
async function tarOf(files: Record<string, string>): Promise<Buffer> {
  const pack = tar.pack();
  for (const [name, content] of Object.entries(files)) pack.entry({ name, mode: 0o644, uid: 0, gid: 0 }, content);
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** The JSON messages of a build response. */
function messages(body: string): any[] {
  return body
    .split(/\r?\n/)
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l));
}

describe.skipIf(!isRoot)(`berth build (${isRoot ? 'root' : rootReason})`, () => {
  let registry: RunningRegistry;
  let daemon: RunningDaemon;
  let work: string;
  let base: string;

  const cli = (args: string[], opts: { input?: string } = {}) => daemon.cli(args, { timeoutMs: 180_000, ...opts });
  const containerIds = async () => (await daemon.api('/containers/json?all=1')).json.map((c: { Id: string }) => c.Id);
  const tags = async () => (await daemon.api('/images/json')).json.flatMap((i: { RepoTags: string[] }) => i.RepoTags);

  /** Create (no User, no Cmd: the image's), start, wait, and return the output of a container. */
  const runViaApi = async (image: string): Promise<string> => {
    const created = await daemon.api('/containers/create', { method: 'POST', body: { Image: image } });
    expect(created.status).toBe(201);
    const id = created.json.Id;
    try {
      expect((await daemon.api(`/containers/${id}/start`, { method: 'POST' })).status).toBe(204);
      await daemon.api(`/containers/${id}/wait`, { method: 'POST' });
      const logs = await daemon.api(`/containers/${id}/logs?stdout=1&stderr=1`);
      // Multiplexed frames: 8-byte header (stream, 0, 0, 0, size) then the payload.
      const raw = Buffer.from(logs.body, 'latin1');
      let text = '';
      for (let pos = 0; pos + 8 <= raw.length;) {
        const size = raw.readUInt32BE(pos + 4);
        text += raw.subarray(pos + 8, pos + 8 + size).toString('utf8');
        pos += 8 + size;
      }
      return text;
    } finally {
      await daemon.api(`/containers/${id}?force=1`, { method: 'DELETE' });
    }
  };

  beforeAll(async () => {
    registry = await startRegistry();
    work = await makeTempDir('berth-build-');
    base = `${registry.host}/test/busybox:latest`;
    await pushBusybox(registry.host, 'test/busybox:latest');
    daemon = await startDaemon();
    expectOk(await cli(['pull', '-q', base]));
  });

  afterAll(async () => {
    if (daemon) {
      // No intermediate container may be left by any build, failed ones included.
      expect(await containerIds()).toEqual([]);
      expect(mountsUnder(daemon.root)).toEqual([]);
      // Build scratch space is cleaned after each build: no context copies, no COPY/WORKDIR layers.
      const tmp = path.join(daemon.root, 'build-tmp');
      expect(existsSync(tmp) ? readdirSync(tmp) : []).toEqual([]);
      const layersDir = path.join(daemon.root, 'plugins', 'storage.overlay', 'containers');
      expect((existsSync(layersDir) ? readdirSync(layersDir) : []).filter((n) => n.startsWith('build-'))).toEqual([]);
      expect(existsSync(path.join(daemon.root, 'build-cache', 'index.json'))).toBe(true);
      await daemon.stop();
    }
    await registry?.stop();
    if (work) await fs.rm(work, { recursive: true, force: true });
  });

  const multiStage = () => `# a comment before the first line
ARG BASE=${base}
FROM \${BASE} AS builder
ARG GREETING=hello
WORKDIR /src
COPY greeting.txt ./
RUN echo "\${GREETING} from $(cat greeting.txt)" > /src/out.txt && \\
    echo built-by-run

FROM \${BASE}
ARG GREETING
ENV APP_HOME=/app \\
    MODE=production
WORKDIR \${APP_HOME}
COPY --from=builder /src/out.txt message.txt
COPY data/ ./data/
RUN echo "mode=$MODE greeting=$GREETING" > /app/run.txt
USER nobody
CMD ["sh", "-c", "cat /app/message.txt /app/run.txt /app/data/a.txt; id -u; pwd"]
`;

  it('builds a multi-stage Dockerfile whose image runs and prints what the Dockerfile put there', async () => {
    const ctx = path.join(work, 'multi');
    await writeTree(ctx, { Dockerfile: multiStage(), 'greeting.txt': 'the context\n', 'data/a.txt': 'data file a\n' });
    const res = expectOk(await cli(['build', '-t', 'multi:v1', '-t', 'multi:also', '--build-arg', 'GREETING=hi', ctx]));
    // Classic builder output: numbered steps, RUN output streamed, containers removed.
    expect(res.stdout).toContain(`Step 1/14 : FROM \${BASE} AS builder`);
    expect(res.stdout).toMatch(/Step 14\/14 : CMD \["sh"/);
    expect(res.stdout).toMatch(/ ---> Running in [a-f0-9]{12}\n/);
    expect(res.stdout).toContain('built-by-run\n');
    expect(res.stdout).toMatch(/Removing intermediate container [a-f0-9]{12}\n/);
    expect(res.stdout).toMatch(/Successfully built [a-f0-9]{12}\n/);
    expect(res.stdout).toContain('Successfully tagged multi:v1\n');
    expect(res.stdout).toContain('Successfully tagged multi:also\n');
    expect(res.stdout).not.toContain('not consumed');

    const run = expectOk(await cli(['run', '--rm', 'multi:v1']));
    expect(run.stdout).toMatch(/^hi from the context\nmode=production greeting=hi\ndata file a\n\d+\n\/app\n$/);
    // USER nobody: checked through the API, whose create leaves User unset (the CLI's `run`
    // sends User "", which the container manager currently lets override the image's USER).
    expect(await runViaApi('multi:v1')).toBe('hi from the context\nmode=production greeting=hi\ndata file a\n65534\n/app\n');

    const inspect = JSON.parse(expectOk(await cli(['image', 'inspect', 'multi:v1'])).stdout)[0];
    expect(inspect.Config.Env).toEqual(expect.arrayContaining(['APP_HOME=/app', 'MODE=production']));
    // ARG values are not part of the image's environment.
    expect(inspect.Config.Env.some((e: string) => e.startsWith('GREETING'))).toBe(false);
    expect(inspect.Config.User).toBe('nobody');
    expect(inspect.Config.WorkingDir).toBe('/app');
  });

  it('history shows the steps, layers for filesystem steps only', async () => {
    const history = (await daemon.api(`/images/${encodeURIComponent('multi:v1')}/history`)).json as { CreatedBy: string; Size: number }[];
    const created = history.map((h) => h.CreatedBy);
    expect(created[0]).toContain('CMD ["sh","-c"');
    expect(created[1]).toContain('USER nobody');
    expect(created[2]).toContain('|1 GREETING=hi /bin/sh -c echo "mode=$MODE greeting=$GREETING" > /app/run.txt');
    expect(created[3]).toMatch(/COPY dir:[a-f0-9]+ in \/app\/data\//);
    expect(created[4]).toMatch(/COPY file:[a-f0-9]+ in \/app\/message.txt/);
    expect(created[5]).toContain('WORKDIR /app');
    expect(created[6]).toContain('ENV APP_HOME=/app MODE=production');
    expect(history[1].Size).toBe(0);
    expect(history[2].Size).toBeGreaterThan(0);

    // The RUN layer holds what the command wrote, not the mount points the launcher made
    // (/etc/hosts, /etc/hostname, /etc/resolv.conf, /proc ...).
    const inspect = (await daemon.api('/images/multi:v1/json')).json;
    const blob = (d: string) => fs.readFile(path.join(daemon.root, 'content', 'blobs', 'sha256', d.replace('sha256:', '')));
    const manifest = JSON.parse((await blob(inspect.Descriptor.digest)).toString('utf8'));
    const runLayer = manifest.layers[manifest.layers.length - 1];
    const names: string[] = [];
    const extract = tar.extract();
    const listed = (async () => {
      for await (const entry of extract) {
        names.push(entry.header.name.replace(/\/$/, ''));
        entry.resume();
      }
    })();
    extract.end(zlib.gunzipSync(await blob(runLayer.digest)));
    await listed;
    expect(names).toContain('app/run.txt');
    expect(names.filter((n) => /^(etc\/(hosts|hostname|resolv\.conf)|proc|sys|dev)(\/|$)/.test(n))).toEqual([]);
  });

  it('an unchanged rebuild takes every step from the cache, in well under a second', async () => {
    const ctx = path.join(work, 'multi');
    const started = Date.now();
    const res = expectOk(await cli(['build', '-t', 'multi:v2', '--build-arg', 'GREETING=hi', ctx]));
    const viaCli = Date.now() - started;
    const steps = res.stdout.match(/^Step \d+\/14 : /gm)?.length ?? 0;
    const cached = res.stdout.match(/ ---> Using cache\n/g)?.length ?? 0;
    // Every step but the two FROMs and the two ARGs (which make no image) is a cache hit.
    expect(steps).toBe(14);
    expect(cached).toBe(10);
    expect(res.stdout).not.toContain('Running in');
    const first = (await daemon.api('/images/multi:v1/json')).json.Id;
    const second = (await daemon.api('/images/multi:v2/json')).json.Id;
    expect(second).toBe(first);

    // The daemon's share, without the CLI's start-up (about 0.1-0.3 s of node on these machines).
    const body = await tarOf({ Dockerfile: multiStage(), 'greeting.txt': 'the context\n', 'data/a.txt': 'data file a\n' });
    const t0 = Date.now();
    const api = await daemon.api(`/build?t=multi:v2&buildargs=${encodeURIComponent(JSON.stringify({ GREETING: 'hi' }))}`, { method: 'POST', body });
    const viaApi = Date.now() - t0;
    const msgs = messages(api.body);
    expect(msgs.find((m) => m.error)).toBeUndefined();
    expect(msgs.filter((m) => m.stream === ' ---> Using cache\n')).toHaveLength(10);
    expect(msgs.find((m) => m.aux)?.aux.ID).toBe(first);
    console.log(`[build] cache-hit rebuild of a 14-step multi-stage Dockerfile: ${viaCli} ms through the CLI, ${viaApi} ms through the API`);
    expect(viaApi).toBeLessThan(1000);
  });

  it('changing one copied file re-runs from that step on, and only from there', async () => {
    const ctx = path.join(work, 'multi');
    await fs.writeFile(path.join(ctx, 'data/a.txt'), 'data file a, changed\n');
    const res = expectOk(await cli(['build', '-t', 'multi:v3', '--build-arg', 'GREETING=hi', ctx]));
    const steps = res.stdout.split(/(?=Step \d+\/\d+ : )/).filter((s) => s.startsWith('Step'));
    const idx = steps.findIndex((s) => s.includes('COPY data/ ./data/'));
    expect(idx).toBeGreaterThan(0);
    for (const s of steps.slice(0, idx)) if (!/: (FROM|ARG)/.test(s)) expect(s).toContain('Using cache');
    for (const s of steps.slice(idx)) expect(s).not.toContain('Using cache');
    expect(steps.slice(idx).join('')).toContain('Running in');
    expect(expectOk(await cli(['run', '--rm', 'multi:v3'])).stdout).toContain('data file a, changed\n');
  });

  it('a failing RUN stops the build with its exit code and output, and writes no tag', async () => {
    const ctx = path.join(work, 'fail');
    await writeTree(ctx, { Dockerfile: `FROM ${base}\nRUN echo before-failure; echo oops >&2; exit 3\nRUN echo never\n` });
    const before = await containerIds();
    const res = await cli(['build', '-t', 'failing:v1', ctx]);
    expect(res.code).toBe(3);
    expect(res.stdout).toContain('before-failure\n');
    expect(res.stdout).toContain('oops\n');
    expect(res.stdout).not.toContain('never');
    expect(res.stderr).toContain("The command '/bin/sh -c echo before-failure; echo oops >&2; exit 3' returned a non-zero code: 3");
    expect(await tags()).not.toContain('failing:v1');
    expect(await containerIds()).toEqual(before);
  });

  it('COPY --chown sets owners, .dockerignore leaves files out, and -q prints only the ID', async () => {
    const ctx = path.join(work, 'chown');
    await writeTree(ctx, {
      Dockerfile: `FROM ${base}\nCOPY --chown=nobody:nobody owned.txt /owned.txt\nCOPY --chown=123:45 . /ctx/\nCMD ["sh","-c","stat -c %u:%g /owned.txt /ctx/owned.txt; ls -a /ctx | sort | tr '\\\\n' ' '"]\n`,
      'owned.txt': 'mine\n',
      'secret.key': 'do not send\n',
      'logs/x.log': 'noise\n',
      'logs/keep.log': 'kept\n',
      '.dockerignore': 'secret.key\nlogs/*.log\n!logs/keep.log\n',
    });
    const res = expectOk(await cli(['build', '-q', '-t', 'chown:v1', ctx]));
    expect(res.stdout).toMatch(/^sha256:[a-f0-9]{64}\n$/);
    const out = expectOk(await cli(['run', '--rm', 'chown:v1'])).stdout;
    expect(out).toContain('65534:65534\n123:45\n');
    expect(out).toContain('owned.txt');
    expect(out).not.toContain('secret.key');
    const logs = expectOk(await cli(['run', '--rm', 'chown:v1', 'ls', '/ctx/logs'])).stdout;
    expect(logs).toBe('keep.log\n');
  });

  it('ADD extracts a local tar archive and refuses remote URLs', async () => {
    const ctx = path.join(work, 'add');
    await fs.mkdir(ctx, { recursive: true });
    const archive = await tarOf({ 'pkg/bin/tool': 'tool\n', 'pkg/README': 'readme\n' });
    await fs.writeFile(path.join(ctx, 'bundle.tar.gz'), zlib.gzipSync(archive));
    await fs.writeFile(path.join(ctx, 'plain.txt'), 'plain\n');
    await fs.writeFile(
      path.join(ctx, 'Dockerfile'),
      `FROM ${base}\nADD bundle.tar.gz /opt/\nADD plain.txt /opt/plain.txt\nCMD ["sh", "-c", "cat /opt/pkg/bin/tool /opt/pkg/README /opt/plain.txt; ls /opt"]\n`,
    );
    expectOk(await cli(['build', '-t', 'add:v1', ctx]));
    expect(expectOk(await cli(['run', '--rm', 'add:v1'])).stdout).toBe('tool\nreadme\nplain\npkg\nplain.txt\n');

    await fs.writeFile(path.join(ctx, 'Dockerfile'), `FROM ${base}\nADD http://127.0.0.1:1/file.txt /file.txt\n`);
    const remote = await cli(['build', ctx]);
    expect(remote.code).not.toBe(0);
    expect(remote.stderr).toContain('remote sources are not supported');
  });

  it('refuses COPY ../x and a symlink leading out of the context', async () => {
    const ctx = path.join(work, 'escape');
    await writeTree(ctx, { Dockerfile: `FROM ${base}\nCOPY ../outside.txt /x\n`, 'inside.txt': 'in\n' });
    await fs.writeFile(path.join(work, 'outside.txt'), 'outside\n');
    const dotdot = await cli(['build', ctx]);
    expect(dotdot.code).not.toBe(0);
    expect(dotdot.stderr).toContain('forbidden path outside the build context: ../outside.txt');

    await fs.symlink('/etc/passwd', path.join(ctx, 'link-out'));
    await fs.writeFile(path.join(ctx, 'Dockerfile'), `FROM ${base}\nCOPY link-out /x\n`);
    const link = await cli(['build', ctx]);
    expect(link.code).not.toBe(0);
    expect(link.stderr).toContain('forbidden path outside the build context: link-out');
  });

  it('--target stops at a stage, -f takes a Dockerfile outside the context, - reads one from stdin, --no-cache rebuilds', async () => {
    const ctx = path.join(work, 'target');
    await writeTree(ctx, { 'file.txt': 'ctx file\n' });
    const outside = path.join(work, 'outside.Dockerfile');
    await fs.writeFile(outside, `FROM ${base} AS first\nCOPY file.txt /first.txt\nCMD ["cat", "/first.txt"]\nFROM first\nRUN exit 9\n`);
    const first = expectOk(await cli(['build', '-f', outside, '--target', 'first', '-t', 'target:first', ctx]));
    expect(first.stdout).toContain('Step 3/3 : CMD');
    expect(first.stdout).not.toContain('exit 9');
    expect(expectOk(await cli(['run', '--rm', 'target:first'])).stdout).toBe('ctx file\n');
    const noCache = expectOk(await cli(['build', '--no-cache', '-f', outside, '--target', 'first', ctx]));
    expect(noCache.stdout).not.toContain('Using cache');
    const missing = await cli(['build', '-f', outside, '--target', 'nope', ctx]);
    expect(missing.stderr).toContain('failed to reach build target nope in Dockerfile');

    const stdin = expectOk(await cli(['build', '-t', 'stdin:v1', '-'], { input: `FROM ${base}\nENV FROM_STDIN=yes\nCMD ["sh", "-c", "echo $FROM_STDIN"]\n` }));
    expect(stdin.stdout).toContain('Successfully tagged stdin:v1');
    expect(expectOk(await cli(['run', '--rm', 'stdin:v1'])).stdout).toBe('yes\n');
  });

  it('builds through POST /build with a tar body, as `DOCKER_BUILDKIT=0 docker build` sends it', async () => {
    const body = await tarOf({
      'Dockerfile.custom': `FROM ${base}\nARG UNUSED_TOO\nLABEL from=api\nCOPY hello.txt /hello.txt\nCMD ["cat", "/hello.txt"]\n`,
      'hello.txt': 'hello over the API\n',
    });
    const qs = new URLSearchParams({ dockerfile: 'Dockerfile.custom', buildargs: JSON.stringify({ NOT_DECLARED: '1' }), labels: JSON.stringify({ extra: 'label' }), rm: '1' });
    qs.append('t', 'api-built:v1');
    const res = await daemon.api(`/v1.41/build?${qs}`, { method: 'POST', body, headers: { 'Content-Type': 'application/x-tar' } });
    expect(res.status).toBe(200);
    const msgs = messages(res.body);
    expect(msgs.find((m) => m.error)).toBeUndefined();
    expect(msgs[0].stream).toMatch(/^Step 1\/6 : FROM /);
    const aux = msgs.find((m) => m.aux?.ID);
    expect(aux.aux.ID).toMatch(/^sha256:[a-f0-9]{64}$/);
    expect(msgs.map((m) => m.stream ?? '').join('')).toContain('[Warning] One or more build-args [NOT_DECLARED] were not consumed');
    expect(expectOk(await cli(['run', '--rm', 'api-built:v1'])).stdout).toBe('hello over the API\n');
    const labels = (await daemon.api('/images/api-built:v1/json')).json.Config.Labels;
    expect(labels).toEqual({ from: 'api', extra: 'label' });

    // A Dockerfile error comes before any output: a plain 400 naming the file and line, as dockerd
    // answers (docker-py raises APIError on it); an empty Dockerfile too.
    const bad = await daemon.api('/build', { method: 'POST', body: await tarOf({ Dockerfile: `FROM ${base}\nRUNN echo\n` }) });
    expect([bad.status, bad.json?.message]).toEqual([400, 'Dockerfile:2: unknown instruction: RUNN']);
    const empty = await daemon.api('/build', { method: 'POST', body: await tarOf({ Dockerfile: '' }) });
    expect(empty.status).toBe(400);
    expect(empty.json?.message).toMatch(/^Dockerfile/);
    // A failure once the build has started stays in the 200 stream, after the steps so far.
    const failed = await daemon.api('/build', { method: 'POST', body: await tarOf({ Dockerfile: `FROM ${base}\nRUN exit 3\n` }) });
    expect(failed.status).toBe(200);
    expect(messages(failed.body).find((m) => m.error)?.errorDetail).toEqual({ code: 3, message: "The command '/bin/sh -c exit 3' returned a non-zero code: 3" });
  });

  it.skipIf(!existsSync(DOCKER))('the real docker CLI builds with the classic builder against berthd', async () => {
    const ctx = path.join(work, 'docker-cli');
    await writeTree(ctx, { Dockerfile: `FROM ${base}\nRUN echo made-by-docker > /made\nCMD ["cat", "/made"]\n` });
    const env = { ...process.env, DOCKER_HOST: `unix://${daemon.socket}`, DOCKER_BUILDKIT: '0', DOCKER_CONFIG: path.join(work, 'docker-config') };
    const { stdout } = await execFileP(DOCKER, ['build', '-t', 'docker-built:v1', ctx], { env, maxBuffer: 16 * 1024 * 1024 });
    expect(stdout).toContain('Successfully tagged docker-built:v1');
    expect(expectOk(await cli(['run', '--rm', 'docker-built:v1'])).stdout).toBe('made-by-docker\n');
  });
});
