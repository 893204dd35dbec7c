/**
 * The real docker CLI drives berthd: `DOCKER_HOST=unix://<berth.sock> docker ...`. Every docker
 * binary found is run through the same suite: docker CLI 28 (/usr/local/bin/docker) and Debian's
 * docker.io 20.10 (/usr/bin/docker), so version negotiation is exercised from API 1.41 and from
 * a client newer than berth (1.50, downgraded to berth's 1.43). No dockerd is involved.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, promises as fs, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOk, runProgram, startDaemon, type CliResult, type RunningDaemon } from '../helpers/daemon';
import { hasCommand, isRoot, rootReason, until } from '../helpers/env';
import { makeTempDir, pushBusybox } from '../helpers/fixtures';
import { startRegistry, type RunningRegistry } from '../helpers/registry';

const CANDIDATES = ['/usr/local/bin/docker', '/usr/bin/docker'];

/** The docker binaries on this machine with their client version (deduplicated by version). */
function dockerClients(): { bin: string; version: string }[] {
  const out: { bin: string; version: string }[] = [];
  for (const bin of CANDIDATES) {
    if (!existsSync(bin)) continue;
    try {
      const version = execFileSync(bin, ['version', '--format', '{{.Client.Version}}'], {
        env: { ...process.env, DOCKER_HOST: 'unix:///nonexistent.sock' },
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore'],
      }).trim();
      if (version && !out.some((c) => c.version === version)) out.push({ bin, version });
    } catch (err) {
      // `docker version` exits 1 when it cannot reach the daemon but still prints the client part.
      const version = String((err as { stdout?: string }).stdout ?? '').trim();
      if (version && !out.some((c) => c.version === version)) out.push({ bin, version });
    }
  }
  return out;
}

const clients = dockerClients();
const skipReason = !isRoot ? rootReason : !clients.length ? `no docker CLI found (looked for ${CANDIDATES.join(', ')}); apt-get install docker.io brings one` : '';

describe.skipIf(!!skipReason)(`the docker CLI against berthd${skipReason ? ` (skipped: ${skipReason})` : ''}`, () => {
  let registry: RunningRegistry;
  let authRegistry: RunningRegistry;
  let daemon: RunningDaemon;
  let work: string;
  let img: string;
  const creds = { user: 'alice', password: 'wonderland-42' };

  beforeAll(async () => {
    registry = await startRegistry();
    authRegistry = await startRegistry({ htpasswd: creds });
    work = await makeTempDir('berth-docker-cli-');
    img = `${registry.host}/test/busybox:latest`;
    await pushBusybox(registry.host, 'test/busybox:latest', { cmd: ['sh'], extraFiles: { 'etc/motd': 'welcome\n' } });
    await pushBusybox(authRegistry.host, 'private/busybox:v1', { creds, extraFiles: { 'private.txt': 'secret stuff\n' } });
    daemon = await startDaemon();
  });

  afterAll(async () => {
    if (daemon) {
      await daemon.removeAllContainers();
      await daemon.stop();
    }
    await registry?.stop();
    await authRegistry?.stop();
    if (work) await fs.rm(work, { recursive: true, force: true });
  });

  it('finds at least one docker CLI to drive berthd with', () => {
    expect(clients.map((c) => c.bin).length).toBeGreaterThan(0);
  });

  describe.each(clients)('docker $version ($bin)', ({ bin, version }) => {
    const major = Number(version.split('.')[0]);
    /** Each client gets its own config dir (credentials), so runs of the two CLIs do not mix. */
    let configDir: string;
    let n = 0;
    const name = (base: string) => `${base}-${major}-${++n}`;

    beforeAll(async () => {
      configDir = path.join(work, `docker-config-${major}`);
      await fs.mkdir(configDir, { recursive: true });
    });

    const docker = (args: string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<CliResult> =>
      runProgram(bin, args, {
        env: { DOCKER_HOST: `unix://${daemon.socket}`, DOCKER_CONFIG: configDir, DOCKER_CLI_HINTS: 'false' },
        input: opts.input,
        timeoutMs: opts.timeoutMs ?? 30_000,
      });
    const ok = async (args: string[], input?: string) => expectOk(await docker(args, { input }), `docker ${args.join(' ')}`);
    const inspect = async (ref: string) => JSON.parse((await ok(['inspect', ref])).stdout)[0];

    it('negotiates the API version and prints a full Server section', async () => {
      const res = await ok(['version']);
      expect(res.stdout).toMatch(/Server: berth/);
      expect(res.stdout).toMatch(/API version:\s+1\.43 \(minimum version 1\.24\)/);
      expect(res.stdout).toMatch(/OS\/Arch:\s+linux\/\w+/);
      expect(res.stdout).toMatch(/Go version:\s+node v\d+/);
      expect(res.stdout).toMatch(/Experimental:\s+false/);
      const json = JSON.parse((await ok(['version', '--format', '{{json .}}'])).stdout);
      expect(json.Server.ApiVersion).toBe('1.43');
      // A client newer than berth talks 1.43; an older one its own version.
      expect(json.Client.ApiVersion).toBe(major >= 24 ? '1.43' : '1.41');
    });

    it('pulls, then runs --rm with output and the exit code', async () => {
      const pull = await ok(['pull', img]);
      expect(pull.stdout).toMatch(/Status: (Downloaded newer image|Image is up to date) for /);
      const hi = await ok(['run', '--rm', img, 'echo', 'hi']);
      expect(hi.stdout).toBe('hi\n');
      const failed = await docker(['run', '--rm', img, 'sh', '-c', 'echo out; echo err >&2; exit 3']);
      expect(failed.code).toBe(3);
      expect(failed.stdout).toBe('out\n');
      expect(failed.stderr).toContain('err\n');
      // --rm left nothing behind.
      expect((await ok(['ps', '-a', '-q'])).stdout.trim()).toBe('');
    });

    it('run -i passes piped stdin through', async () => {
      const res = await ok(['run', '--rm', '-i', img, 'sh', '-c', 'cat; echo done'], 'line one\nline two\n');
      expect(res.stdout).toBe('line one\nline two\ndone\n');
    });

    it('run -d, then logs, exec, ps, inspect, stop and rm', async () => {
      const c = name('detached');
      const id = (await ok(['run', '-d', '--name', c, img, 'sh', '-c', 'echo started; exec sleep 300'])).stdout.trim();
      expect(id).toMatch(/^[0-9a-f]{64}$/);
      await until('the log line', async () => (await ok(['logs', c])).stdout === 'started\n');
      const exec = await ok(['exec', c, 'sh', '-c', 'echo from-exec; id -u']);
      expect(exec.stdout).toBe('from-exec\n0\n');
      expect((await docker(['exec', c, 'sh', '-c', 'exit 7'])).code).toBe(7);
      // dockerd gives an exec that cannot start 126 (docker-py's test_exec_run_failed passes on 20.10 so).
      const missing = await docker(['exec', c, 'no-such-binary']);
      expect(missing.code).toBe(126);
      expect(missing.stdout + missing.stderr).toMatch(/no-such-binary/);
      const ps = await ok(['ps', '--format', '{{.ID}} {{.Names}} {{.Status}}']);
      expect(ps.stdout).toMatch(new RegExp(`^${id.slice(0, 12)} ${c} Up `, 'm'));
      const info = await inspect(c);
      expect(info.State.Running).toBe(true);
      expect(info.Config.Image).toBe(img);
      const stopped = await ok(['stop', '-t', '1', c]);
      expect(stopped.stdout.trim()).toBe(c);
      expect((await inspect(c)).State.Running).toBe(false);
      await ok(['rm', c]);
      const gone = await docker(['inspect', c]);
      expect(gone.code).toBe(1);
      expect(gone.stderr).toMatch(/No such (container|object)/i);
    });

    it('kill answers once the container is gone: inspect right after sees exit code 137', async () => {
      const c = name('killed');
      await ok(['run', '-d', '--name', c, img, 'sleep', '300']);
      await ok(['kill', c]);
      const state = (await inspect(c)).State;
      expect(state.Running).toBe(false);
      expect(state.ExitCode).toBe(137);
      await ok(['rm', c]);
    });

    it('commit, history and rmi', async () => {
      const c = name('tocommit');
      await ok(['run', '--name', c, img, 'sh', '-c', 'echo committed > /committed.txt']);
      const repo = `committed-${major}:v1`;
      const id = (await ok(['commit', '-m', 'a message', c, repo])).stdout.trim();
      expect(id).toMatch(/^sha256:[0-9a-f]{64}$/);
      const history = await ok(['history', '--no-trunc', '--format', '{{.CreatedBy}}|{{.Comment}}', repo]);
      expect(history.stdout.split('\n')[0]).toContain('|a message');
      expect(history.stdout.trim().split('\n').length).toBeGreaterThanOrEqual(2);
      expect((await ok(['run', '--rm', repo, 'cat', '/committed.txt'])).stdout).toBe('committed\n');
      await ok(['rm', c]);
      const rmi = await ok(['rmi', repo]);
      expect(rmi.stdout).toContain(`Untagged: ${repo}`);
      expect(rmi.stdout).toContain(`Deleted: ${id}`);
      expect((await docker(['image', 'inspect', repo])).code).toBe(1);
    });

    it('cp copies files and directories in and out, also for stopped containers', async () => {
      const c = name('cp');
      await ok(['run', '-d', '--name', c, img, 'sleep', '300']);
      const src = path.join(work, `cp-src-${major}`);
      await fs.mkdir(path.join(src, 'sub'), { recursive: true });
      await fs.writeFile(path.join(src, 'a.txt'), 'file a\n');
      await fs.writeFile(path.join(src, 'sub', 'b.txt'), 'file b\n');
      await fs.symlink('a.txt', path.join(src, 'link'));
      // In: a file into a directory, a file under a new name, a whole directory.
      await ok(['cp', path.join(src, 'a.txt'), `${c}:/tmp/`]);
      await ok(['cp', path.join(src, 'a.txt'), `${c}:/renamed.txt`]);
      await ok(['cp', src, `${c}:/copied`]);
      expect((await ok(['exec', c, 'cat', '/tmp/a.txt', '/renamed.txt', '/copied/sub/b.txt'])).stdout).toBe('file a\nfile a\nfile b\n');
      expect((await ok(['exec', c, 'readlink', '/copied/link'])).stdout).toBe('a.txt\n');
      // Owned by root inside the container (docker's default without -a).
      expect((await ok(['exec', c, 'stat', '-c', '%u:%g', '/copied/sub/b.txt'])).stdout).toBe('0:0\n');
      // Out: a file to stdout as a tar, a directory to the host.
      const tar = await docker(['cp', `${c}:/etc/motd`, '-']);
      expect(tar.code).toBe(0);
      expect(tar.stdout).toContain('motd');
      expect(tar.stdout).toContain('welcome');
      const out = path.join(work, `cp-out-${major}`);
      await ok(['cp', `${c}:/copied`, out]);
      expect(readFileSync(path.join(out, 'sub', 'b.txt'), 'utf8')).toBe('file b\n');
      expect(await fs.readlink(path.join(out, 'link'))).toBe('a.txt');
      // A symlink in the container that points "outside" resolves inside it, never on the host.
      await ok(['exec', c, 'busybox', 'ln', '-s', '../../../../../../etc', '/escape']);
      const marker = `berth-cp-escape-${process.pid}-${major}.txt`;
      await fs.writeFile(path.join(work, marker), 'contained\n');
      await ok(['cp', path.join(work, marker), `${c}:/escape/`]);
      expect(existsSync(path.join('/etc', marker))).toBe(false);
      expect((await ok(['exec', c, 'cat', `/etc/${marker}`])).stdout).toBe('contained\n');
      // A missing path is a clear error.
      const missing = await docker(['cp', `${c}:/no/such/file`, path.join(work, 'nothing')]);
      expect(missing.code).not.toBe(0);
      // The 20.10 CLI words the daemon's 404 itself; newer ones pass berthd's message on.
      expect(missing.stderr).toMatch(/Could not find the file \/no\/such\/file|No such container:path: .*\/no\/such\/file/);
      // A stopped container still has its filesystem.
      await ok(['stop', '-t', '0', c]);
      await ok(['cp', path.join(src, 'sub', 'b.txt'), `${c}:/while-stopped.txt`]);
      const back = path.join(work, `while-stopped-${major}.txt`);
      await ok(['cp', `${c}:/while-stopped.txt`, back]);
      expect(readFileSync(back, 'utf8')).toBe('file b\n');
      await ok(['rm', c]);
    });

    it('events shows create, start and die, filtered and bounded by --since/--until', async () => {
      const since = Math.floor(Date.now() / 1000) - 1;
      const c = name('events');
      await docker(['run', '--name', c, img, 'sh', '-c', 'exit 2']);
      const until = Math.floor(Date.now() / 1000) + 1;
      await new Promise((r) => setTimeout(r, 1100)); // --until must be in the past for the command to end
      const res = await ok([
        'events',
        '--since',
        String(since),
        '--until',
        String(until),
        '--filter',
        `container=${c}`,
        '--filter',
        'type=container',
        '--format',
        '{{.Action}} {{.Actor.Attributes.name}}',
      ]);
      const actions = res.stdout.trim().split('\n');
      expect(actions).toEqual(expect.arrayContaining([`create ${c}`, `start ${c}`, `die ${c}`]));
      // The filter kept other containers' events out.
      for (const line of actions) expect(line).toMatch(new RegExp(` ${c}$`));
      const dieOnly = await ok([
        'events',
        '--since',
        String(since),
        '--until',
        String(until),
        '--filter',
        `container=${c}`,
        '--filter',
        'event=die',
        '--format',
        '{{.Action}} {{index .Actor.Attributes "exitCode"}}',
      ]);
      expect(dieOnly.stdout.trim()).toBe('die 2');
      await ok(['rm', c]);
    });

    it('logs in to an htpasswd registry and pulls a private image', async () => {
      const ref = `${authRegistry.host}/private/busybox:v1`;
      const bad = await docker(['login', '-u', creds.user, '--password-stdin', authRegistry.host], { input: 'wrong-password\n' });
      expect(bad.code).not.toBe(0);
      expect(bad.stderr).toMatch(/unauthorized|incorrect/i);
      const good = await ok(['login', '-u', creds.user, '--password-stdin', authRegistry.host], `${creds.password}\n`);
      expect(good.stdout).toContain('Login Succeeded');
      const saved = JSON.parse(readFileSync(path.join(configDir, 'config.json'), 'utf8'));
      expect(saved.auths[authRegistry.host]).toBeDefined();
      await ok(['pull', ref]);
      expect((await ok(['run', '--rm', ref, 'cat', '/private.txt'])).stdout).toBe('secret stuff\n');
      await ok(['rmi', ref]);
      await ok(['logout', authRegistry.host]);
    });

    it.skipIf(!hasCommand('script'))('run -it works through a pty (script(1)): output and exit code', async () => {
      const child = spawn('script', ['-qefc', `${bin} run -it --rm ${img} sh`, '/dev/null'], {
        env: { ...process.env, DOCKER_HOST: `unix://${daemon.socket}`, DOCKER_CONFIG: configDir, TERM: 'xterm' },
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      let output = '';
      child.stdout.on('data', (c) => (output += c));
      child.stderr.on('data', (c) => (output += c));
      const closed = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
      try {
        await until('the shell prompt', () => /# $/m.test(output.replace(/\x1b\[[0-9;]*[a-zA-Z]/g, '')), 20_000);
        child.stdin.write('echo hi-from-tty; exit 3\r');
        const code = await Promise.race([closed, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 20_000))]);
        expect(code, output).toBe(3);
        // The command's output on a line of its own (the typed command is echoed by the tty too).
        expect(output).toMatch(/^hi-from-tty\r?$/m);
      } finally {
        child.stdin.end();
        if (child.exitCode === null) child.kill('SIGKILL');
      }
    });

    it('stats --no-stream, top, pause/unpause, restart, rename and wait', async () => {
      const c = name('res');
      await ok(['run', '-d', '--name', c, img, 'sh', '-c', 'trap "exit 0" TERM; while :; do sleep 1; done']);
      const stats = await ok(['stats', '--no-stream', '--format', '{{.Name}} {{.MemUsage}} {{.PIDs}}', c]);
      expect(stats.stdout).toMatch(new RegExp(`^${c} \\S+ / \\S+ \\d+`));
      const top = await ok(['top', c]);
      expect(top.stdout).toMatch(/PID/);
      expect(top.stdout).toMatch(/sleep 1|while :/);
      await ok(['pause', c]);
      expect((await inspect(c)).State.Paused).toBe(true);
      expect((await ok(['ps', '--filter', `name=${c}`, '--format', '{{.Status}}'])).stdout).toMatch(/\(Paused\)/);
      await ok(['unpause', c]);
      expect((await inspect(c)).State.Paused).toBe(false);
      const startedBefore = (await inspect(c)).State.StartedAt;
      await ok(['restart', '-t', '5', c]);
      const after = await inspect(c);
      expect(after.State.Running).toBe(true);
      expect(after.State.StartedAt).not.toBe(startedBefore);
      const renamed = name('renamed');
      await ok(['rename', c, renamed]);
      expect((await inspect(renamed)).Name).toBe(`/${renamed}`);
      expect((await docker(['inspect', c])).code).toBe(1);
      const waiter = docker(['wait', renamed]);
      await new Promise((r) => setTimeout(r, 300));
      await ok(['kill', '-s', 'TERM', renamed]);
      const waited = await waiter;
      expect(waited.code).toBe(0);
      expect(waited.stdout.trim()).toBe('0');
      await ok(['rm', renamed]);
    });

    it('container prune -f, system df and info', async () => {
      const keep = name('keep');
      await ok(['run', '-d', '--name', keep, img, 'sleep', '300']);
      const pruneMe = name('prune');
      await ok(['run', '--name', pruneMe, img, 'true']);
      const prune = await ok(['container', 'prune', '-f']);
      expect(prune.stdout).toContain('Deleted Containers:');
      expect((await docker(['inspect', pruneMe])).code).toBe(1);
      expect((await inspect(keep)).State.Running).toBe(true);
      const df = await ok(['system', 'df']);
      expect(df.stdout).toMatch(/^Images\s+\d+\s+\d+/m);
      const [, total, active] = /^Containers\s+(\d+)\s+(\d+)\s/m.exec(df.stdout) ?? [];
      expect(Number(active)).toBeGreaterThanOrEqual(1);
      expect(Number(total)).toBeGreaterThanOrEqual(Number(active));
      const info = JSON.parse((await ok(['info', '--format', '{{json .}}'])).stdout);
      expect(info.Driver).toBe('overlay');
      expect(['1', '2']).toContain(info.CgroupVersion);
      expect(info.NCPU).toBeGreaterThan(0);
      expect(info.MemTotal).toBeGreaterThan(0);
      expect(info.ContainersRunning).toBeGreaterThanOrEqual(1);
      const text = await ok(['info']);
      expect(text.stdout).toMatch(/Storage Driver: overlay/);
      expect(text.stdout).toMatch(/Cgroup Version: [12]/);
      expect(text.stdout).toMatch(/CPUs: \d+/);
      expect(text.stdout).toMatch(/Total Memory: /);
      expect(text.stdout).toMatch(/Swarm: inactive/);
      await ok(['rm', '-f', keep]);
    });
  });
});
