/**
 * Containers end to end: the real `berth` CLI against a real berthd (native runtime, namespaces
 * isolator, overlay storage), on busybox images built by umoci and pushed by skopeo to Debian's
 * docker-registry. Covers run/create/start/stop/restart/kill/rm/ps/logs/wait/rename/inspect and
 * what the process sees from inside (pid 1, network, capabilities, read-only paths, binds).
 */
import { existsSync, promises as fs, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOk, startDaemon, type RunningDaemon } from '../helpers/daemon';
import { isRoot, rootReason, until } from '../helpers/env';
import { makeTempDir, pushBusybox } from '../helpers/fixtures';
import { startRegistry, type RunningRegistry } from '../helpers/registry';

const PASSWD = 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n';
const GROUP = 'root:x:0:\napp:x:1000:\nnobody:x:65534:\n';

/** Poll until `fn` returns a truthy value (or fail naming what was awaited). */

describe.skipIf(!isRoot)(`containers through berthd and the CLI (${isRoot ? 'root' : rootReason})`, () => {
  let registry: RunningRegistry;
  let daemon: RunningDaemon;
  let work: string;
  let img: string;
  let lazyImg: string;

  beforeAll(async () => {
    registry = await startRegistry();
    work = await makeTempDir('berth-containers-');
    img = `${registry.host}/test/busybox:latest`;
    await pushBusybox(registry.host, 'test/busybox:latest', {
      cmd: ['echo', 'from-image-cmd'],
      env: ['IMAGE_VAR=image'],
      extraFiles: { 'etc/passwd': PASSWD, 'etc/group': GROUP, 'home/app/.keep': '' },
    });
    lazyImg = `${registry.host}/test/lazy:v1`;
    await pushBusybox(registry.host, 'test/lazy:v1', { extraFiles: { 'lazy.txt': 'lazy\n' } });
    daemon = await startDaemon();
    expectOk(await daemon.cli(['pull', '-q', img]));
  });

  afterAll(async () => {
    if (daemon) {
      // Leave nothing running: every container is force-removed before the daemon goes.
      await daemon.removeAllContainers();
      await daemon.stop();
    }
    await registry?.stop();
    if (work) await fs.rm(work, { recursive: true, force: true });
  });

  const cli = (args: string[], input?: string) => daemon.cli(args, { input });
  const run = (args: string[], input?: string) => cli(['run', '--rm', ...args], input);
  const inspect = async (ref: string) => JSON.parse(expectOk(await cli(['inspect', ref])).stdout)[0];

  describe('run', () => {
    it('prints the output and exits 0', async () => {
      const res = expectOk(await run([img, 'echo', 'hi']));
      expect(res.stdout).toBe('hi\n');
    });

    it('passes the exit code through', async () => {
      const res = await run([img, 'sh', '-c', 'exit 3']);
      expect(res.code).toBe(3);
    });

    it('sends stderr to stderr and stdout to stdout', async () => {
      const res = expectOk(await run([img, 'sh', '-c', 'echo out; echo err >&2']));
      expect(res.stdout).toBe('out\n');
      expect(res.stderr).toBe('err\n');
    });

    it('-i relays piped stdin to the process', async () => {
      const res = expectOk(await run(['-i', img, 'cat'], 'hello\n'));
      expect(res.stdout).toBe('hello\n');
    });

    it('-e and --env-file set the environment, over the image env', async () => {
      const envFile = path.join(work, 'env.list');
      await fs.writeFile(envFile, '# comment\nFROM_FILE=file-value\n\nIMAGE_VAR=overridden\n');
      const res = expectOk(await run(['-e', 'K=V', '--env-file', envFile, img, 'env']));
      const env = res.stdout.split('\n');
      expect(env).toContain('K=V');
      expect(env).toContain('FROM_FILE=file-value');
      expect(env).toContain('IMAGE_VAR=overridden');
      expect(env).toContain('PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin');
    });

    it('-w sets the working directory', async () => {
      expect(expectOk(await run(['-w', '/tmp', img, 'pwd'])).stdout).toBe('/tmp\n');
      // Docker creates a working directory the image lacks.
      expect(expectOk(await run(['-w', '/not/yet/there', img, 'pwd'])).stdout).toBe('/not/yet/there\n');
    });

    it('--hostname sets the hostname', async () => {
      expect(expectOk(await run(['--hostname', 'h1', img, 'hostname'])).stdout).toBe('h1\n');
    });

    it('--entrypoint replaces the entrypoint, the rest are its arguments', async () => {
      const res = expectOk(await run(['--entrypoint', 'echo', img, 'via', 'entrypoint']));
      expect(res.stdout).toBe('via entrypoint\n');
    });

    it("uses the image's Cmd when none is given", async () => {
      expect(expectOk(await run([img])).stdout).toBe('from-image-cmd\n');
    });

    it('-u runs as a uid, or as a user of the image', async () => {
      expect(expectOk(await run(['-u', '1000', img, 'id', '-u'])).stdout).toBe('1000\n');
      const named = expectOk(await run(['-u', 'app', img, 'sh', '-c', 'id -u; id -g; echo $HOME']));
      expect(named.stdout).toBe('1000\n1000\n/home/app\n');
      const missing = await run(['-u', 'nosuchuser', img, 'true']);
      expect(missing.code).not.toBe(0);
      expect(missing.stderr).toContain('nosuchuser');
    });

    it('refuses a second container of the same name, and leaves none behind', async () => {
      expectOk(await cli(['create', '--name', 'twice', img, 'true']));
      const before = expectOk(await cli(['ps', '-a', '-q'])).stdout;
      const second = await cli(['run', '--name', 'twice', img, 'echo', 'never']);
      expect(second.code).not.toBe(0);
      expect(second.stderr).toMatch(/Conflict/);
      expect(second.stderr).toContain('"/twice"');
      expect(second.stdout).not.toContain('never');
      expect(expectOk(await cli(['ps', '-a', '-q'])).stdout).toBe(before);
      expectOk(await cli(['rm', 'twice']));
    });

    it('gives a name to one of several creates racing for it, and frees the name of a failed create', async () => {
      const creates = await Promise.all([1, 2, 3, 4].map(() => daemon.api('/v1.43/containers/create?name=racer', { method: 'POST', body: { Image: img, Cmd: ['true'] } })));
      expect(creates.map((r) => r.status).sort()).toEqual([201, 409, 409, 409]);
      const winner = creates.find((r) => r.status === 201)!.json.Id;
      for (const r of creates.filter((c) => c.status === 409)) expect(r.json.message).toContain(`"/racer" is already in use by container "${winner}"`);
      const named = (await daemon.api('/v1.43/containers/json?all=1')).json.filter((c: { Names: string[] }) => c.Names.includes('/racer'));
      expect(named.map((c: { Id: string }) => c.Id)).toEqual([winner]);
      expectOk(await cli(['rm', 'racer']));

      // No command at all: the create fails, and the name it asked for is not kept.
      const failed = await cli(['create', '--name', 'cmdless', '--entrypoint', '', img]);
      expect(failed.code).not.toBe(0);
      expect(failed.stderr).toMatch(/no command specified/);
      expectOk(await cli(['create', '--name', 'cmdless', img, 'true']));
      expectOk(await cli(['rm', 'cmdless']));
    });

    it('-t gives the process a terminal; -i -t refuses piped stdin', async () => {
      const tty = await run(['-t', img, 'sh', '-c', 'tty; echo hi; exit 4']);
      expect(tty.code).toBe(4);
      expect(tty.stdout).toMatch(/^\/dev\/pts\/\d+\r\nhi\r\n$/);
      const before = expectOk(await cli(['ps', '-a', '-q'])).stdout;
      const refused = await run(['-i', '-t', img, 'cat'], 'hello\n');
      expect(refused.code).toBe(1);
      expect(refused.stderr).toContain('the input device is not a TTY');
      expect(expectOk(await cli(['ps', '-a', '-q'])).stdout).toBe(before);
    });

    it('pulls a missing image first', async () => {
      const res = expectOk(await run([lazyImg, 'cat', '/lazy.txt']));
      expect(res.stderr).toContain(`Unable to find image '${lazyImg}' locally`);
      expect(res.stdout).toBe('lazy\n');
      expect(expectOk(await cli(['images'])).stdout).toContain('test/lazy');
    });

    it('a missing command is a clear error with exit 127', async () => {
      const res = await run([img, 'no-such-command']);
      expect(res.code).toBe(127);
      expect(res.stderr).toContain('no-such-command');
      expect(res.stderr).toMatch(/not found/);
      // --rm still removes the container that never ran.
      await until('the failed container to be removed', async () => !expectOk(await cli(['ps', '-a'])).stdout.includes('no-such-command'));
    });
  });

  describe('detached lifecycle', () => {
    it('run -d, logs, logs --tail, logs -f, ps, inspect', async () => {
      // The last line waits for a file the test makes on the host, so what logs shows is certain.
      const ctl = path.join(work, 'talker-ctl');
      await fs.mkdir(ctl, { recursive: true });
      const script = 'echo one; echo two; echo three >&2; while [ ! -e /ctl/go ]; do sleep 0.05; done; echo four';
      const id = expectOk(await cli(['run', '-d', '--name', 'talker', '-v', `${ctl}:/ctl`, img, 'sh', '-c', script])).stdout.trim();
      expect(id).toMatch(/^[0-9a-f]{64}$/);

      const ps = expectOk(await cli(['ps'])).stdout;
      expect(ps).toContain(id.slice(0, 12));
      expect(ps).toMatch(/talker/);
      expect(ps).toMatch(/Up /);

      const info = await inspect('talker');
      expect(info.Id).toBe(id);
      expect(info.State.Running).toBe(true);
      expect(info.State.Status).toBe('running');
      expect(info.State.Pid).toBeGreaterThan(1);
      expect(existsSync(`/proc/${info.State.Pid}`)).toBe(true);
      expect(Date.parse(info.State.StartedAt)).toBeGreaterThan(Date.now() - 60_000);
      expect(info.Config.Image).toBe(img);
      expect(info.Config.Cmd).toEqual(['sh', '-c', script]);
      expect(info.Name).toBe('/talker');

      await until(
        'the first lines in the log',
        async () => (await cli(['logs', 'talker'])).stdout.includes('two'),
        10_000,
        () => cli(['logs', 'talker']),
      );
      const logs = expectOk(await cli(['logs', 'talker']));
      expect(logs.stdout).toBe('one\ntwo\n');
      expect(logs.stderr).toBe('three\n');
      // --tail counts lines of both streams, as they were written.
      const tail = expectOk(await cli(['logs', '--tail', '2', 'talker']));
      expect(tail.stdout).toBe('two\n');
      expect(tail.stderr).toBe('three\n');

      // -f follows until the process exits, then ends by itself.
      const following = cli(['logs', '-f', 'talker']);
      await new Promise((r) => setTimeout(r, 300));
      await fs.writeFile(path.join(ctl, 'go'), '');
      const followed = expectOk(await following);
      expect(followed.stdout).toBe('one\ntwo\nfour\n');

      expect(expectOk(await cli(['wait', 'talker'])).stdout).toBe('0\n');
      expect(expectOk(await cli(['ps', '-a'])).stdout).toMatch(/Exited \(0\).*talker/);
      expect(expectOk(await cli(['ps'])).stdout).not.toContain('talker');
      expectOk(await cli(['rm', 'talker']));
    });

    it('stop sends SIGTERM to a process that traps it', async () => {
      const script = 'trap "echo got-term; exit 5" TERM; echo ready; while true; do sleep 0.1; done';
      expectOk(await cli(['run', '-d', '--name', 'trapper', img, 'sh', '-c', script]));
      await until('ready', async () => (await cli(['logs', 'trapper'])).stdout.includes('ready'));
      const t0 = Date.now();
      expectOk(await cli(['stop', 'trapper']));
      expect(Date.now() - t0).toBeLessThan(5_000);
      expect(expectOk(await cli(['logs', 'trapper'])).stdout).toBe('ready\ngot-term\n');
      const info = await inspect('trapper');
      expect(info.State.Running).toBe(false);
      expect(info.State.ExitCode).toBe(5);
      expect(expectOk(await cli(['ps', '-a'])).stdout).toMatch(/Exited \(5\).*trapper/);
      expect(expectOk(await cli(['wait', 'trapper'])).stdout).toBe('5\n');

      // Start again: the same container runs once more, its log keeps both runs.
      expectOk(await cli(['start', 'trapper']));
      expect((await inspect('trapper')).State.Running).toBe(true);
      await until('the second ready', async () => (await cli(['logs', 'trapper'])).stdout.split('ready').length === 3);
      expectOk(await cli(['restart', '-t', '5', 'trapper']));
      const restarted = await inspect('trapper');
      expect(restarted.State.Running).toBe(true);
      await until('the third ready', async () => (await cli(['logs', 'trapper'])).stdout.split('ready').length === 4);
      expect((await cli(['logs', 'trapper'])).stdout.split('got-term').length).toBe(3);
      expectOk(await cli(['stop', 'trapper']));
      expectOk(await cli(['rm', 'trapper']));
    });

    it('stop -t 1 kills a process that ignores SIGTERM', async () => {
      expectOk(await cli(['run', '-d', '--name', 'stubborn', img, 'sh', '-c', 'trap "" TERM; echo ready; while true; do sleep 0.1; done']));
      await until('ready', async () => (await cli(['logs', 'stubborn'])).stdout.includes('ready'));
      const t0 = Date.now();
      expectOk(await cli(['stop', '-t', '1', 'stubborn']));
      const took = Date.now() - t0;
      expect(took).toBeGreaterThanOrEqual(900);
      expect(took).toBeLessThan(6_000);
      expect((await inspect('stubborn')).State.ExitCode).toBe(137);
      expect(expectOk(await cli(['ps', '-a'])).stdout).toMatch(/Exited \(137\).*stubborn/);
      expectOk(await cli(['rm', 'stubborn']));
    });

    it('kill -s sends the named signal', async () => {
      const script = 'trap "echo got-usr1; exit 9" USR1; echo ready; while true; do sleep 0.1; done';
      expectOk(await cli(['run', '-d', '--name', 'signalled', img, 'sh', '-c', script]));
      await until('ready', async () => (await cli(['logs', 'signalled'])).stdout.includes('ready'));
      expectOk(await cli(['kill', '-s', 'USR1', 'signalled']));
      expect(expectOk(await cli(['wait', 'signalled'])).stdout).toBe('9\n');
      expect(expectOk(await cli(['logs', 'signalled'])).stdout).toContain('got-usr1');
      const notRunning = await cli(['kill', 'signalled']);
      expect(notRunning.code).not.toBe(0);
      expect(notRunning.stderr).toMatch(/not running/);
      expectOk(await cli(['rm', 'signalled']));
    });

    it('rm of a running container needs -f; rm -f kills and removes it', async () => {
      const id = expectOk(await cli(['run', '-d', '--name', 'busy', img, 'sleep', '60'])).stdout.trim();
      const pid = (await inspect('busy')).State.Pid;
      const refused = await cli(['rm', 'busy']);
      expect(refused.code).not.toBe(0);
      expect(refused.stderr).toMatch(/cannot remove a running container/);
      expect((await inspect('busy')).State.Running).toBe(true);
      expectOk(await cli(['rm', '-f', 'busy']));
      expect(expectOk(await cli(['ps', '-a', '-q', '--no-trunc'])).stdout).not.toContain(id);
      expect(existsSync(`/proc/${pid}`)).toBe(false);
      expect(existsSync(path.join(daemon.root, 'containers', id))).toBe(false);
      const gone = await cli(['inspect', 'busy']);
      expect(gone.code).not.toBe(0);
      expect(gone.stderr).toMatch(/No such object: busy/);
      const waitGone = await cli(['wait', 'busy']);
      expect(waitGone.code).not.toBe(0);
      expect(waitGone.stderr).toMatch(/No such container: busy/);
    });

    it('an attached run whose container is force-removed exits 137', async () => {
      const attached = cli(['run', '--name', 'doomed', img, 'sleep', '30']);
      await until('doomed to run', async () => (await cli(['ps'])).stdout.includes('doomed'));
      expectOk(await cli(['rm', '-f', 'doomed']));
      expect((await attached).code).toBe(137);
    });

    it('wait prints the exit code', async () => {
      expectOk(await cli(['run', '-d', '--name', 'waiter', img, 'sh', '-c', 'sleep 0.5; exit 42']));
      const res = await cli(['wait', 'waiter']);
      expect(res.stdout).toBe('42\n');
      expectOk(await cli(['rm', 'waiter']));
    });

    it('start -a runs a created container attached and passes its exit code', async () => {
      expectOk(await cli(['create', '--name', 'attached', img, 'sh', '-c', 'echo out; echo err >&2; exit 6']));
      for (let i = 0; i < 2; i++) {
        const res = await cli(['start', '-a', 'attached']);
        expect(res.code).toBe(6);
        expect(res.stdout).toBe('out\n');
        expect(res.stderr).toBe('err\n');
      }
      expect(expectOk(await cli(['logs', 'attached'])).stdout).toBe('out\nout\n');
      expectOk(await cli(['rm', 'attached']));
    });

    it('rename gives a container a new name', async () => {
      const id = expectOk(await cli(['create', '--name', 'before', img, 'true'])).stdout.trim();
      expectOk(await cli(['rename', 'before', 'after']));
      expect((await inspect('after')).Id).toBe(id);
      expect((await cli(['inspect', 'before'])).code).not.toBe(0);
      expectOk(await cli(['create', '--name', 'before', img, 'true'])); // the old name is free again
      const clash = await cli(['rename', 'before', 'after']);
      expect(clash.code).not.toBe(0);
      expect(clash.stderr).toContain('"/after"');
      expectOk(await cli(['rm', 'after', 'before']));
    });
  });

  describe('isolation seen from inside', () => {
    it("pid 1 is the container's process", async () => {
      const res = expectOk(await run([img, 'cat', '/proc/1/cmdline']));
      expect(res.stdout.split('\0').filter(Boolean)).toEqual(['cat', '/proc/1/cmdline']);
    });

    it('has only lo in its network namespace with --network none', async () => {
      const res = expectOk(await run(['--network', 'none', img, 'cat', '/proc/net/dev']));
      const ifaces = res.stdout
        .split('\n')
        .slice(2)
        .filter(Boolean)
        .map((l) => l.trim().split(':')[0]);
      expect(ifaces).toEqual(['lo']);
    });

    it("keeps Docker's default capabilities", async () => {
      const res = expectOk(await run([img, 'grep', 'CapBnd', '/proc/self/status']));
      expect(res.stdout.trim()).toBe('CapBnd:\t00000000a80425fb');
    });

    it('starts the process with no signal ignored or blocked (berthd ignores SIGPIPE; posix_spawn leaves 32 and 33 ignored)', async () => {
      const res = expectOk(await run([img, 'grep', '-E', 'Sig(Ign|Blk)', '/proc/self/status']));
      expect(res.stdout.trim().split('\n')).toEqual(['SigBlk:\t0000000000000000', 'SigIgn:\t0000000000000000']);
    });

    it('--privileged keeps every capability', async () => {
      const host = readFileSync('/proc/self/status', 'utf8').match(/CapBnd:\s*(\w+)/)![1];
      const res = expectOk(await run(['--privileged', img, 'grep', 'CapBnd', '/proc/self/status']));
      expect(res.stdout.trim()).toBe(`CapBnd:\t${host}`);
      expect(host).not.toBe('00000000a80425fb');
    });

    it('/proc/sys is read-only', async () => {
      const res = await run([img, 'sh', '-c', 'echo berth > /proc/sys/kernel/hostname']);
      expect(res.code).not.toBe(0);
      expect(res.stderr).toMatch(/Read-only file system/);
    });

    it('-v binds a host directory, read-only with :ro', async () => {
      const hostDir = path.join(work, 'shared');
      await fs.mkdir(hostDir, { recursive: true });
      await fs.writeFile(path.join(hostDir, 'from-host'), 'host\n');
      const ro = await run(['-v', `${hostDir}:/data:ro`, img, 'sh', '-c', 'cat /data/from-host; echo x > /data/nope']);
      expect(ro.stdout).toBe('host\n');
      expect(ro.code).not.toBe(0);
      expect(ro.stderr).toMatch(/Read-only file system/);
      expect(existsSync(path.join(hostDir, 'nope'))).toBe(false);
      expectOk(await run(['-v', `${hostDir}:/data`, img, 'sh', '-c', 'echo from-container > /data/written']));
      expect(await fs.readFile(path.join(hostDir, 'written'), 'utf8')).toBe('from-container\n');
    });

    it('--read-only makes the root filesystem read-only', async () => {
      const res = await run(['--read-only', img, 'touch', '/newfile']);
      expect(res.code).not.toBe(0);
      expect(res.stderr).toMatch(/Read-only file system/);
      expectOk(await run([img, 'touch', '/newfile']));
    });
  });
});
