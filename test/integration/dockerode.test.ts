/**
 * dockerode (the most used Docker client library for Node) drives berthd over its socket:
 * containers, hijacked run/exec streams, pull with followProgress, images and events, with
 * unversioned paths and with a pinned API version.
 */
import { PassThrough } from 'node:stream';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, type RunningDaemon } from '../helpers/daemon';
import { isRoot, rootReason } from '../helpers/env';
import { pushBusybox } from '../helpers/fixtures';
import { startRegistry, type RunningRegistry } from '../helpers/registry';

function collect(stream: NodeJS.ReadableStream): { text: () => string } {
  let text = '';
  stream.on('data', (c: Buffer) => (text += c.toString()));
  return { text: () => text };
}

describe.skipIf(!isRoot)(`dockerode against berthd (${isRoot ? 'root' : rootReason})`, () => {
  let registry: RunningRegistry;
  let daemon: RunningDaemon;
  let docker: Docker;
  let img: string;

  beforeAll(async () => {
    registry = await startRegistry();
    img = `${registry.host}/test/busybox:latest`;
    await pushBusybox(registry.host, 'test/busybox:latest', { cmd: ['sh'], layers: 2 });
    daemon = await startDaemon();
    docker = new Docker({ socketPath: daemon.socket });
  });

  afterAll(async () => {
    if (daemon) {
      await daemon.removeAllContainers();
      await daemon.stop();
    }
    await registry?.stop();
  });

  it('pulls with followProgress and lists the image', async () => {
    const events: { status?: string; id?: string }[] = [];
    const stream = await docker.pull(img);
    const output = await new Promise<unknown[]>((resolve, reject) =>
      docker.modem.followProgress(
        stream,
        (err: Error | null, out: unknown[]) => (err ? reject(err) : resolve(out)),
        (e: { status?: string; id?: string }) => events.push(e),
      ),
    );
    expect(output.length).toBe(events.length);
    expect(events.some((e) => e.status === 'Pull complete')).toBe(true);
    expect(events.at(-1)?.status).toMatch(/Downloaded newer image|Image is up to date/);
    const images = await docker.listImages();
    const found = images.find((i) => i.RepoTags?.includes(img));
    expect(found?.Id).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(found?.Size).toBeGreaterThan(0);
  });

  it('a pull of a missing image fails with the registry reason', async () => {
    await expect(docker.pull(`${registry.host}/test/nothing-here:latest`)).rejects.toMatchObject({ statusCode: 404 });
  });

  it('createContainer, start, inspect, logs, stop, remove', async () => {
    const container = await docker.createContainer({ Image: img, Cmd: ['sh', '-c', 'echo to-out; echo to-err >&2; exec sleep 300'], name: 'dockerode-life', Labels: { suite: 'dockerode' } });
    await container.start();
    const info = await container.inspect();
    expect(info.State.Running).toBe(true);
    expect(info.Name).toBe('/dockerode-life');
    expect(info.Config.Labels.suite).toBe('dockerode');
    // Logs without follow come back as one buffer of multiplexed frames.
    let logs = '';
    for (let i = 0; i < 50 && !logs.includes('to-err'); i++) {
      const out = new PassThrough();
      const err = new PassThrough();
      const o = collect(out);
      const e = collect(err);
      docker.modem.demuxStream(bufferStream((await container.logs({ stdout: true, stderr: true })) as unknown as Buffer), out, err);
      await new Promise((r) => setTimeout(r, 100));
      logs = `${o.text()}|${e.text()}`;
    }
    expect(logs).toBe('to-out\n|to-err\n');
    const listed = await docker.listContainers({ filters: { label: ['suite=dockerode'] } });
    expect(listed.map((c) => c.Names[0])).toEqual(['/dockerode-life']);
    await container.stop({ t: 1 });
    expect((await container.inspect()).State.Running).toBe(false);
    await container.remove();
    await expect(container.inspect()).rejects.toMatchObject({ statusCode: 404 });
  });

  it('run with a stream: output and status code', async () => {
    const out = new PassThrough();
    const seen = collect(out);
    const [result, container] = await docker.run(img, ['sh', '-c', 'echo streamed; exit 4'], out);
    expect(result.StatusCode).toBe(4);
    // docker.run creates a TTY by default: the terminal turns \n into \r\n.
    expect(seen.text()).toBe('streamed\r\n');
    await container.remove();
    // Without a TTY the stream is multiplexed and dockerode splits it into stdout and stderr.
    const out2 = new PassThrough();
    const err2 = new PassThrough();
    const o = collect(out2);
    const e = collect(err2);
    const [plain, c2] = await docker.run(img, ['sh', '-c', 'echo plain; echo oops >&2'], [out2, err2], { Tty: false });
    expect(plain.StatusCode).toBe(0);
    expect(o.text()).toBe('plain\n');
    expect(e.text()).toBe('oops\n');
    await c2.remove();
  });

  it('exec with a hijacked stream, then its exit code', async () => {
    const container = await docker.createContainer({ Image: img, Cmd: ['sleep', '300'] });
    await container.start();
    const exec = await container.exec({ Cmd: ['sh', '-c', 'echo in-exec; echo exec-err >&2; exit 5'], AttachStdout: true, AttachStderr: true });
    const stream = await exec.start({ hijack: true, stdin: false });
    const out = new PassThrough();
    const err = new PassThrough();
    const o = collect(out);
    const e = collect(err);
    docker.modem.demuxStream(stream, out, err);
    await new Promise((r) => stream.on('end', r));
    expect(o.text()).toBe('in-exec\n');
    expect(e.text()).toBe('exec-err\n');
    let inspected = await exec.inspect();
    for (let i = 0; i < 50 && inspected.Running; i++) {
      await new Promise((r) => setTimeout(r, 100));
      inspected = await exec.inspect();
    }
    expect(inspected.ExitCode).toBe(5);
    await container.remove({ force: true });
  });

  it('getEvents with since/until and filters', async () => {
    const since = Math.floor(Date.now() / 1000) - 1;
    const container = await docker.createContainer({ Image: img, Cmd: ['true'], name: 'dockerode-events' });
    await container.start();
    await container.wait();
    await container.remove();
    const until = Math.floor(Date.now() / 1000) + 1;
    const stream = await docker.getEvents({ since, until, filters: { type: ['container'], container: ['dockerode-events'] } });
    const text = await new Promise<string>((resolve) => {
      let s = '';
      stream.on('data', (c: Buffer) => (s += c.toString()));
      stream.on('end', () => resolve(s));
    });
    const actions = text
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l).Action);
    expect(actions).toEqual(expect.arrayContaining(['create', 'start', 'die', 'destroy']));
    expect(actions.indexOf('create')).toBeLessThan(actions.indexOf('die'));
  });

  it('works with a pinned API version (v1.41 paths) and refuses one berth does not speak', async () => {
    const pinned = new Docker({ socketPath: daemon.socket, version: 'v1.41' });
    const version = await pinned.version();
    expect(version.ApiVersion).toBe('1.43');
    expect((await pinned.listContainers({ all: true })).length).toBeGreaterThanOrEqual(0);
    const tooNew = new Docker({ socketPath: daemon.socket, version: 'v9.99' });
    await expect(tooNew.listContainers()).rejects.toMatchObject({ statusCode: 400 });
  });

  it('getArchive and putArchive (docker cp) through dockerode', async () => {
    const container = await docker.createContainer({ Image: img, Cmd: ['true'] });
    const tarStream = await import('tar-stream');
    const pack = tarStream.pack();
    pack.entry({ name: 'from-dockerode.txt', mode: 0o640 }, 'put by dockerode\n');
    pack.finalize();
    await container.putArchive(pack as unknown as NodeJS.ReadableStream, { path: '/tmp' });
    // infoArchive answers with the HEAD response; the stat is in Docker's header.
    const head = (await container.infoArchive({ path: '/tmp/from-dockerode.txt' })) as unknown as { headers: Record<string, string>; resume(): void };
    head.resume();
    const info = JSON.parse(Buffer.from(head.headers['x-docker-container-path-stat'], 'base64').toString('utf8'));
    expect(info.name).toBe('from-dockerode.txt');
    expect(info.size).toBe('put by dockerode\n'.length);
    expect(info.mode & 0o777).toBe(0o640);
    const archive = await container.getArchive({ path: '/tmp/from-dockerode.txt' });
    const extract = tarStream.extract();
    const files: Record<string, string> = {};
    await new Promise<void>((resolve, reject) => {
      extract.on('entry', (header, body, next) => {
        let s = '';
        body.on('data', (c: Buffer) => (s += c));
        body.on('end', () => {
          files[header.name] = s;
          next();
        });
      });
      extract.on('finish', resolve);
      extract.on('error', reject);
      archive.pipe(extract);
    });
    expect(files).toEqual({ 'from-dockerode.txt': 'put by dockerode\n' });
    await container.remove();
  });
});

function bufferStream(buf: Buffer): PassThrough {
  const s = new PassThrough();
  s.end(buf);
  return s;
}
