/**
 * The CLI shapes people script against, with the real CLI and a real berthd: Go templates for
 * --format (checked against what Debian's docker CLI 20.10 prints for the same objects from the
 * same berthd), tables, ps/images filters applied by the daemon, build intermediates in images
 * and rmi, docker's exit codes and messages, --help, cp, events, run flags, Ctrl-C on run.
 */
import { spawn } from 'node:child_process';
import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI_JS, expectOk, runProgram, startDaemon, type RunningDaemon } from '../helpers/daemon';
import { isRoot, rootReason, until } from '../helpers/env';
import { makeTempDir, pushBusybox } from '../helpers/fixtures';
import { startRegistry, type RunningRegistry } from '../helpers/registry';

const DOCKER = '/usr/bin/docker';

describe.skipIf(!isRoot)(`CLI shapes (${isRoot ? 'root' : rootReason})`, () => {
  let registry: RunningRegistry;
  let daemon: RunningDaemon;
  let work: string;
  let img: string;

  const cli = (args: string[], opts: { input?: string } = {}) => daemon.cli(args, { timeoutMs: 120_000, ...opts });
  const ok = async (args: string[]) => expectOk(await cli(args), `berth ${args.join(' ')}`).stdout;
  const docker = (args: string[]) => runProgram(DOCKER, args, { env: { DOCKER_HOST: `unix://${daemon.socket}`, DOCKER_CONFIG: path.join(work, 'docker-config') }, timeoutMs: 60_000 });

  beforeAll(async () => {
    registry = await startRegistry();
    work = await makeTempDir('berth-cli-shapes-');
    img = `${registry.host}/test/busybox:latest`;
    await pushBusybox(registry.host, 'test/busybox:latest', { cmd: ['sh'] });
    daemon = await startDaemon();
    await ok(['pull', '-q', img]);
    // Two containers that stay: one exited 3 with labels and a volume, one running.
    await ok(['run', '--name', 'done3', '-l', 'tier=web', '-l', 'app=shop', '-v', 'shapes-data:/data', img, 'sh', '-c', 'exit 3']).catch(() => undefined);
    await ok(['run', '-d', '--name', 'live', '-l', 'tier=db', img, 'sleep', '600']);
  }, 180_000);

  afterAll(async () => {
    if (daemon) {
      await daemon.removeAllContainers();
      await daemon.stop();
    }
    await registry?.stop();
    if (work) await fs.rm(work, { recursive: true, force: true });
  });

  describe('--format', () => {
    const templates = [
      '{{.State.Status}}',
      '{{.Name}} {{.State.ExitCode}}',
      '{{json .Config.Labels}}',
      '{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}}',
      '{{range .Mounts}}{{.Type}}:{{.Destination}} {{end}}',
      '{{index .Config.Labels "tier"}}|{{index .Config.Labels "nope"}}|',
      '{{if eq .State.Status "running"}}up{{else if eq .State.ExitCode 3}}three{{else}}other{{end}}',
      '{{with .State}}{{.Running}}{{end}}',
      '{{printf "%s/%d" .Name .State.ExitCode}}',
      '{{join .Config.Cmd ","}} {{len .Config.Cmd}}',
      '{{upper .State.Status}} {{title .State.Status}} {{lower .Name}}',
      '{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}',
      '{{.HostConfig.RestartPolicy.Name}}',
      '{{- .Name -}} {{/* trimmed */}}',
      '{{$n := .Name}}{{$n}}{{if and .State.Running (not .State.Paused)}} running{{end}}',
      '{{.Config.Cmd}}',
      '{{split .Name "/"}}',
      '{{truncate .Id 12}} {{pad .Name 1 1}}',
    ];

    it.skipIf(!existsSync(DOCKER))(
      'inspect -f prints what docker inspect -f prints for the same container',
      async () => {
        for (const c of ['done3', 'live']) {
          for (const t of templates) {
            const mine = await cli(['inspect', '-f', t, c]);
            const theirs = await docker(['inspect', '-f', t, c]);
            expect({ t, c, code: mine.code, out: mine.stdout }).toEqual({ t, c, code: theirs.code, out: theirs.stdout });
          }
        }
      },
      240_000,
    ); // two CLIs per template and container: minutes on a loaded machine

    it('inspect -f on a field that is not there, and a template that does not parse', async () => {
      expect(await ok(['inspect', '-f', '{{.Nope}}', 'live'])).toBe('<no value>\n');
      const bad = await cli(['inspect', '-f', '{{.Name', 'live']);
      expect(bad.code).toBe(64);
      expect(bad.stderr).toBe('Template parsing error: template: :1: unclosed action\n');
      const img1 = await ok(['image', 'inspect', '-f', '{{index .RepoTags 0}} {{.Os}}', img]);
      expect(img1).toBe(`${img} linux\n`);
    });

    it.skipIf(!existsSync(DOCKER))("ps and images tables: docker's headers and column alignment", async () => {
      for (const args of [
        ['ps', '-a', '--format', 'table {{.ID}}\\t{{.Image}}\\t{{.Names}}\\t{{.Label "tier"}}\\t{{.State}}'],
        ['ps', '-a', '--format', 'table {{.Names}}\\t{{.Mounts}}\\t{{.Networks}}\\t{{.Command}}\\t{{.Ports}}'],
        ['ps', '-a', '--format', '{{.Names}}: {{.Status}} {{json .Names}}'],
        ['ps', '-a', '--filter', 'label=tier=web', '--format', '{{.ID}} {{.Names}}'],
        ['images', '--format', 'table {{.Repository}}\\t{{.Tag}}\\t{{.ID}}\\t{{.Size}}'],
        ['images', '--format', '{{.Repository}}:{{.Tag}} {{.Digest}}'],
        ['volume', 'ls', '--format', 'table {{.Name}}\\t{{.Driver}}'],
      ]) {
        const mine = await cli(args);
        const theirs = await docker(args);
        // Both ask berthd, a moment apart: "18 seconds ago" and "19 seconds ago" are the same answer.
        const shape = (out: string) => out.replace(/\d+ seconds/g, 'N seconds');
        expect({ args, code: mine.code, out: shape(mine.stdout) }).toEqual({ args, code: theirs.code, out: shape(theirs.stdout) });
      }
      expect((await ok(['ps', '--format', 'table {{.ID}}\t{{.Image}}'])).split('\n')[0]).toBe('CONTAINER ID   IMAGE');
      // docker joins labels in Go's random map order; berth sorts them.
      expect(await ok(['ps', '-a', '--filter', 'name=done3', '--format', '{{.Labels}}'])).toBe('app=shop,tier=web\n');
    });

    it('version, info, stats and network ls take --format too', async () => {
      expect(await ok(['version', '--format', '{{.Server.ApiVersion}}'])).toMatch(/^1\.\d+\n$/);
      expect(await ok(['info', '--format', '{{.Containers}} {{.ContainersRunning}}'])).toBe('2 1\n');
      expect(await ok(['stats', '--no-stream', '--format', '{{.Name}}', 'live'])).toBe('live\n');
      expect(await ok(['network', 'ls', '--format', '{{.Name}}'])).toMatch(/\S/);
      const unknown = await cli(['ps', '--format', '{{.Nope}}']);
      expect(unknown.code).toBe(1);
      expect(unknown.stderr).toContain("can't evaluate field Nope");
    });
  });

  describe('ps --filter, applied by berthd', () => {
    const names = async (...filters: string[]) => (await ok(['ps', '-a', '--format', '{{.Names}}', ...filters.flatMap((f) => ['--filter', f])])).split('\n').filter(Boolean).sort();

    it('status, exited, name, id, label, ancestor, volume, network, health, before, since', async () => {
      const viaApi = async (f: object) => ((await daemon.api(`/containers/json?all=1&filters=${encodeURIComponent(JSON.stringify(f))}`)).json as { Names: string[] }[]).map((c) => c.Names[0]).sort();
      expect(await viaApi({ exited: ['3'] })).toEqual(['/done3']);
      expect(await viaApi({ ancestor: ['no-such-image:1'] })).toEqual([]);
      expect(await viaApi({ volume: ['shapes-data'] })).toEqual(['/done3']);
      const liveId = (await ok(['inspect', '-f', '{{.Id}}', 'live'])).trim();
      expect(await names('exited=3')).toEqual(['done3']);
      expect(await names('exited=0')).toEqual([]);
      expect(await names('status=running')).toEqual(['live']);
      expect(await names('status=exited')).toEqual(['done3']);
      expect(await names('name=liv')).toEqual(['live']);
      expect(await names(`id=${liveId.slice(0, 10)}`)).toEqual(['live']);
      expect(await names('label=tier')).toEqual(['done3', 'live']);
      expect(await names('label=tier=db')).toEqual(['live']);
      expect(await names(`ancestor=${img}`)).toEqual(['done3', 'live']);
      expect(await names('ancestor=no-such-image:1')).toEqual([]);
      expect(await names('volume=shapes-data')).toEqual(['done3']);
      expect(await names('volume=/data')).toEqual(['done3']);
      expect(await names('network=no-such-net')).toEqual([]);
      expect(await names('health=none')).toEqual(['done3', 'live']);
      expect(await names('health=healthy')).toEqual([]);
      expect(await names('before=live')).toEqual(['done3']);
      expect(await names('since=done3')).toEqual(['live']);
      // Without -a, a status filter still finds stopped containers (dockerd's rule).
      expect(await ok(['ps', '--filter', 'status=exited', '--format', '{{.Names}}'])).toBe('done3\n');
    });

    it("an unknown key or value is a 400 in dockerd's words", async () => {
      const bad = await cli(['ps', '--filter', 'colour=red']);
      expect(bad.code).toBe(1);
      expect(bad.stderr).toBe("Error response from daemon: invalid filter 'colour'\n");
      expect((await cli(['ps', '--filter', 'status=sleeping'])).stderr).toContain("invalid filter 'status=sleeping'");
      const api = await daemon.api(`/containers/json?filters=${encodeURIComponent(JSON.stringify({ exited: ['x'] }))}`);
      expect(api.status).toBe(400);
      expect((await daemon.api(`/images/json?filters=${encodeURIComponent(JSON.stringify({ colour: ['red'] }))}`)).json.message).toBe("invalid filter 'colour'");
    });
  });

  describe('images and build intermediates', () => {
    it('images hides the steps of a build, dangling=true does not count them, rmi deletes them', async () => {
      const ctx = path.join(work, 'ctx');
      await fs.mkdir(ctx, { recursive: true });
      await fs.writeFile(path.join(ctx, 'Dockerfile'), `FROM ${img}\nRUN echo a > /a\nRUN echo b > /b\nLABEL tier=big\n`);
      await ok(['build', '-q', '-t', 'big:1', ctx]);
      const list = async (query: string) => (await daemon.api(`/images/json${query}`)).json as { Id: string; RepoTags: string[] }[];
      const filters = (f: object) => `?filters=${encodeURIComponent(JSON.stringify(f))}`;
      const intermediates = (await list('?all=1')).filter((i) => !i.RepoTags.length).map((i) => i.Id);
      expect(intermediates.length).toBeGreaterThanOrEqual(2);
      expect((await list('')).filter((i) => !i.RepoTags.length)).toEqual([]);
      expect(await list(filters({ dangling: ['true'] }))).toEqual([]);
      expect((await list(filters({ label: ['tier=big'] }))).map((i) => i.RepoTags)).toEqual([['big:1']]);
      expect(await ok(['images', '--format', '{{.Repository}}:{{.Tag}}'])).not.toContain('<none>');
      expect(await ok(['images', '--filter', 'dangling=true', '-q'])).toBe('');
      expect(await ok(['images', '--filter', 'label=tier=big', '--format', '{{.Repository}}:{{.Tag}}'])).toBe('big:1\n');
      expect(await ok(['images', '--filter', 'reference=big', '--format', '{{.Repository}}:{{.Tag}}'])).toBe('big:1\n');
      expect(await ok(['images', '--filter', `before=big:1`, '--format', '{{.Repository}}'])).toContain(`${registry.host}/test/busybox`);
      expect((await cli(['images', '--filter', 'dangling=maybe'])).stderr).toContain("invalid filter 'dangling=maybe'");
      const bigId = (await daemon.api('/images/big:1/json')).json.Id;
      const rmi = (await ok(['rmi', 'big:1'])).split('\n').filter(Boolean);
      // docker: Untagged, then Deleted for the image and each untagged parent it leaves unused.
      expect(rmi.slice(0, 2)).toEqual(['Untagged: big:1', `Deleted: ${bigId}`]);
      expect(rmi.slice(2).sort()).toEqual(intermediates.map((id) => `Deleted: ${id}`).sort());
      expect((await list('?all=1')).filter((i) => !i.RepoTags.length)).toEqual([]);
      expect(await ok(['images', '-q', img])).not.toBe('');
    }, 180_000);
  });

  describe('exit codes and messages', () => {
    it('daemon-side run errors exit 125 as docker prints them', async () => {
      const missing = await cli(['run', '--rm', `${registry.host}/test/nope:1`, 'true']);
      expect(missing.code).toBe(125);
      expect(missing.stderr).toMatch(/^Unable to find image '.*nope:1' locally\n[\s\S]*berth: Error response from daemon: .*\.\nSee 'berth run --help'\.\n$/);
      const inUse = await cli(['run', '--name', 'live', img, 'true']);
      expect(inUse.code).toBe(125);
      expect(inUse.stderr).toMatch(/^berth: Error response from daemon: Conflict\. The container name "\/live" is already in use/);
      const badVolume = await cli(['run', '--rm', '-v', 'relative/path:/x', img, 'true']);
      expect(badVolume.code).toBe(125);
      expect(badVolume.stderr).toMatch(/^berth: Error response from daemon: /);
      expect((await cli(['run', '--rm', img, 'no-such-cmd'])).code).toBe(127);
      expect((await cli(['run', '--rm', img, '/etc'])).code).toBe(126);
    });

    it("flag checks: docker's messages, exit 125, nothing created", async () => {
      const before = await ok(['ps', '-aq']);
      const cases: [string[], string][] = [
        [['run', '--cpus', 'abc', img], 'invalid argument "abc" for "--cpus" flag: failed to parse abc as a rational number\nSee \'berth run --help\'.\n'],
        [['run', '--restart', 'bogus', img], "berth: invalid restart policy 'bogus'.\nSee 'berth run --help'.\n"],
        [['run', '--rm', '--restart', 'always', img], "berth: Conflicting options: --restart and --rm.\nSee 'berth run --help'.\n"],
        [['run', '-e', '=bad', img], 'invalid argument "=bad" for "-e, --env" flag: invalid environment variable: =bad\nSee \'berth run --help\'.\n'],
        [['run', '--bogus', img], "unknown flag: --bogus\nSee 'berth run --help'.\n"],
        [['run', img, '--name'].slice(0, 1).concat(['--name']), "flag needs an argument: --name\nSee 'berth run --help'.\n"],
        [['ps', '--format'], "flag needs an argument: --format\nSee 'berth ps --help'.\n"],
        [['ps', '-x'], "unknown shorthand flag: 'x' in -x\nSee 'berth ps --help'.\n"],
        [['images', '--bogus'], "unknown flag: --bogus\nSee 'berth images --help'.\n"],
        [['rm'], '"berth rm" requires at least 1 argument.\nSee \'berth rm --help\'.\n\nUsage:  berth rm [OPTIONS] CONTAINER [CONTAINER...]\n'],
      ];
      for (const [args, stderr] of cases) {
        const res = await cli(args);
        expect({ args, code: res.code, stderr: res.stderr }).toEqual({ args, code: 125, stderr });
      }
      expect(await ok(['ps', '-aq'])).toBe(before);
    });

    it('--help lists every flag of a command', async () => {
      const help = await ok(['run', '--help']);
      expect(help).toMatch(/^Usage: {2}berth run \[OPTIONS\] IMAGE \[COMMAND\] \[ARG\.\.\.\]\n\nCreate and run a new container from an image\n\nOptions:\n/);
      for (const flag of [
        '--add-host list',
        '--dns list',
        '--dns-search list',
        '--dns-option list',
        '--ulimit list',
        '--device list',
        '--pid string',
        '--shm-size string',
        '--group-add list',
        '--health-cmd string',
        '--health-interval string',
        '--health-timeout string',
        '--health-retries string',
        '--health-start-period string',
        '--no-healthcheck',
        '--volumes-from list',
        '--log-opt list',
        '--log-driver string',
        '--mac-address string',
        '-l, --label list',
        '--label-file list',
        '-m, --memory string',
        '--cpus string',
        '--restart string',
        '-h, --hostname string',
      ]) {
        expect(help).toContain(flag);
      }
      const ps = await ok(['ps', '--help']);
      for (const flag of ['-a, --all', '-f, --filter list', '--format string', '-n, --last string', '-l, --latest', '--no-trunc', '-q, --quiet', '-s, --size']) expect(ps).toContain(flag);
      expect(await ok(['image', 'ls', '--help'])).toContain('--digests');
      expect(await ok(['cp', '--help'])).toContain('-L, --follow-link');
      expect(await ok(['events', '--help'])).toContain('--until string');
    });
  });

  describe('run flags reach the create request as docker sends them', () => {
    it('HostConfig and Config fields', async () => {
      const labels = path.join(work, 'labels');
      await fs.writeFile(labels, '# a comment\nfrom.file=1\ntier=file\n');
      const res = await cli([
        'create',
        '--name',
        'flags',
        '--add-host',
        'db.local:10.0.0.5',
        '--dns',
        '10.0.0.53',
        '--dns-search',
        'example.test',
        '--dns-option',
        'ndots:2',
        '--ulimit',
        'nofile=1024:2048',
        '--pid',
        'host',
        '--shm-size',
        '128m',
        '--group-add',
        '1234',
        '--volumes-from',
        'done3',
        '--log-opt',
        'max-size=1m',
        '--log-driver',
        'json-file',
        '--label-file',
        labels,
        '--label',
        'tier=flag',
        '--memory',
        '64m',
        '--cpus',
        '1.5',
        '--restart',
        'on-failure:3',
        '--health-cmd',
        'true',
        '--health-interval',
        '5s',
        '--health-retries',
        '2',
        '--mac-address',
        '02:42:ac:11:00:09',
        img,
        'true',
      ]);
      // berthd may refuse a field it does not honour yet; what was sent is what docker sends.
      if (res.code !== 0) {
        expect(res.code).toBe(125);
        expect(res.stderr).toMatch(/^berth: Error response from daemon: /);
        return;
      }
      const hc = JSON.parse(await ok(['inspect', '-f', '{{json .HostConfig}}', 'flags']));
      expect(hc).toMatchObject({
        ExtraHosts: ['db.local:10.0.0.5'],
        Dns: ['10.0.0.53'],
        DnsSearch: ['example.test'],
        DnsOptions: ['ndots:2'],
        Ulimits: [{ Name: 'nofile', Soft: 1024, Hard: 2048 }],
        PidMode: 'host',
        ShmSize: 128 * 1024 * 1024,
        GroupAdd: ['1234'],
        VolumesFrom: ['done3'],
        LogConfig: { Type: 'json-file', Config: { 'max-size': '1m' } },
        Memory: 64 * 1024 * 1024,
        NanoCpus: 1.5e9,
        RestartPolicy: { Name: 'on-failure', MaximumRetryCount: 3 },
      });
      const cfg = JSON.parse(await ok(['inspect', '-f', '{{json .Config}}', 'flags']));
      expect(cfg.Labels).toEqual({ 'from.file': '1', tier: 'flag' });
      await ok(['rm', 'flags']);
    });

    it('exec -t gives TERM=xterm as docker does', async () => {
      expect(await ok(['exec', '-t', 'live', 'sh', '-c', 'echo $TERM'])).toBe('xterm\r\n');
      expect(await ok(['exec', 'live', 'sh', '-c', 'echo "[$TERM]"'])).toBe('[]\n');
      expect(await ok(['exec', '-t', '-e', 'TERM=vt100', 'live', 'sh', '-c', 'echo $TERM'])).toBe('vt100\r\n');
    });
  });

  describe('cp', () => {
    it('both ways, into directories and to new names, -a, -L and tar streams', async () => {
      const host = path.join(work, 'cp');
      await fs.mkdir(path.join(host, 'tree', 'sub'), { recursive: true });
      await fs.writeFile(path.join(host, 'tree', 'sub', 'f.txt'), 'in the tree\n');
      await fs.writeFile(path.join(host, 'one.txt'), 'one\n');
      await fs.chown(path.join(host, 'one.txt'), 4321, 4321);
      await ok(['cp', path.join(host, 'one.txt'), 'live:/tmp/']);
      await ok(['cp', path.join(host, 'one.txt'), 'live:/tmp/renamed.txt']);
      await ok(['cp', '-a', path.join(host, 'one.txt'), 'live:/tmp/owned.txt']);
      await ok(['cp', path.join(host, 'tree'), 'live:/tmp/']);
      expect(await ok(['exec', 'live', 'sh', '-c', 'cat /tmp/one.txt /tmp/renamed.txt /tmp/tree/sub/f.txt; stat -c %u /tmp/one.txt /tmp/owned.txt'])).toBe('one\none\nin the tree\n0\n4321\n');
      await ok(['exec', 'live', 'sh', '-c', 'echo from-c > /tmp/c.txt; ln -s /tmp/c.txt /tmp/link; mkdir -p /tmp/d/e; echo deep > /tmp/d/e/x']);
      await ok(['cp', 'live:/tmp/c.txt', host]);
      await ok(['cp', 'live:/tmp/c.txt', path.join(host, 'new-name.txt')]);
      await ok(['cp', 'live:/tmp/d', path.join(host, 'dcopy')]);
      await ok(['cp', 'live:/tmp/d/.', path.join(host, 'tree')]);
      await ok(['cp', 'live:/tmp/link', path.join(host, 'kept-link')]);
      await ok(['cp', '-L', 'live:/tmp/link', path.join(host, 'followed')]);
      expect(await fs.readFile(path.join(host, 'c.txt'), 'utf8')).toBe('from-c\n');
      expect(await fs.readFile(path.join(host, 'new-name.txt'), 'utf8')).toBe('from-c\n');
      expect(await fs.readFile(path.join(host, 'dcopy', 'e', 'x'), 'utf8')).toBe('deep\n');
      expect(await fs.readFile(path.join(host, 'tree', 'e', 'x'), 'utf8')).toBe('deep\n');
      expect(await fs.readlink(path.join(host, 'kept-link'))).toBe('/tmp/c.txt');
      expect(await fs.readFile(path.join(host, 'followed'), 'utf8')).toBe('from-c\n');
      const tarOut = await runProgram('sh', ['-c', `node ${CLI_JS} -H unix://${daemon.socket} cp live:/tmp/d - | tar -tf -`]);
      expect(
        tarOut.stdout
          .split('\n')
          .filter(Boolean)
          .map((n) => n.replace(/\/$/, ''))
          .sort(),
      ).toEqual(['d', 'd/e', 'd/e/x']);
      await fs.writeFile(path.join(host, 'streamed.txt'), 'streamed\n');
      const tarIn = await runProgram('sh', ['-c', `cd ${host} && tar -cf - streamed.txt | node ${CLI_JS} -H unix://${daemon.socket} cp - live:/tmp`]);
      expect(tarIn.code, tarIn.stderr).toBe(0);
      expect(await ok(['exec', 'live', 'cat', '/tmp/streamed.txt'])).toBe('streamed\n');
      expect((await cli(['cp', '-', 'live:/nowhere'], { input: '' })).stderr).toContain('No such container:path: live:/nowhere');
      const missing = await cli(['cp', 'live:/no/such', host]);
      expect(missing.code).toBe(1);
      expect(missing.stderr).toContain('No such container:path: live:/no/such');
    });
  });

  describe('events', () => {
    it('--since/--until replay, --filter and --format', async () => {
      const since = Math.floor(Date.now() / 1000) - 1;
      await ok(['create', '--name', 'evt', '-l', 'tier=evt', img, 'true']);
      await ok(['rm', 'evt']);
      const until = Math.floor(Date.now() / 1000) + 1;
      const lines = (await ok(['events', '--since', String(since), '--until', String(until), '--filter', 'container=evt', '--format', '{{.Type}} {{.Action}} {{.Actor.Attributes.name}}']))
        .split('\n')
        .filter(Boolean);
      expect(lines).toEqual(['container create evt', 'container destroy evt']);
      const plain = (await ok(['events', '--since', String(since), '--until', String(until), '--filter', 'event=create', '--filter', 'container=evt'])).trim();
      expect(plain).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z container create [0-9a-f]{64} \(.*name=evt.*tier=evt\)$/);
    });
  });

  describe('Ctrl-C on an attached run', () => {
    it('three SIGINTs end the CLI (rc 1) when PID 1 ignores them', async () => {
      const child = spawn('node', [CLI_JS, '-H', `unix://${daemon.socket}`, 'run', '--name', 'stubborn', img, 'sleep', '600'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (c) => (stderr += c));
      const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
      try {
        await until('the container runs', async () => (await ok(['inspect', '-f', '{{.State.Running}}', 'stubborn'])).trim() === 'true', 30_000);
        for (let i = 0; i < 3; i++) {
          child.kill('SIGINT');
          await new Promise((r) => setTimeout(r, 300));
        }
        expect(await exited).toBe(1);
        expect(stderr).toContain('got 3 SIGTERM/SIGINTs, forcefully exiting');
        // The container itself ignored them and still runs, as with docker.
        expect((await ok(['inspect', '-f', '{{.State.Running}}', 'stubborn'])).trim()).toBe('true');
      } finally {
        if (child.exitCode === null) child.kill('SIGKILL');
        await cli(['rm', '-f', 'stubborn']);
      }
    }, 60_000);
  });
});
