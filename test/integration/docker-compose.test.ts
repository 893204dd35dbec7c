/**
 * docker-compose (Debian's 1.29.2, a client nobody here wrote) against a real berthd (root): three
 * projects brought up and down as users do. Web + backend on the project network by service name
 * with a named volume, a published port, env and env_file, restart and mem_limit; depends_on
 * with service_healthy; a build: section with entrypoint/command and --scale. `down -v` must
 * leave no container, network or volume. Traffic stays on loopback and the project's bridge.
 * Services stop with a 1 s grace period: their PID 1 (httpd, sleep) ignores SIGTERM, as in Docker.
 */
import { existsSync, promises as fs } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOk, runProgram, startDaemon, type CliResult, type RunningDaemon } from '../helpers/daemon';
import { hasCommand, isRoot, rootReason } from '../helpers/env';
import { busyboxArchive, makeTempDir } from '../helpers/fixtures';

const hasCompose = hasCommand('docker-compose');
const hasCni = existsSync('/usr/lib/cni/bridge');
const reason = !isRoot ? rootReason : !hasCompose ? 'needs docker-compose (Debian: apt-get install docker-compose)' : !hasCni ? 'needs containernetworking-plugins' : 'root';

function httpGet(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: '/', timeout: 5000 }, (res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve(body));
      })
      .on('error', reject);
  });
}

describe.skipIf(!isRoot || !hasCompose || !hasCni)(`docker-compose projects on berthd (${reason})`, () => {
  let work: string;
  let daemon: RunningDaemon;

  beforeAll(async () => {
    work = await makeTempDir('berth-compose-');
    const archive = await busyboxArchive(work, 'compose/busybox:latest', { extraFiles: { 'www/index.html': 'hello from web\n' } });
    daemon = await startDaemon();
    expectOk(await daemon.cli(['load', '-i', archive]));
  });

  afterAll(async () => {
    if (daemon) {
      await daemon.removeAllContainers();
      await daemon.stop();
    }
    if (work) await fs.rm(work, { recursive: true, force: true });
  });

  /** Write a project folder and return a runner of docker-compose in it. */
  async function project(name: string, files: Record<string, string>) {
    const dir = path.join(work, name);
    for (const [file, content] of Object.entries(files)) {
      await fs.mkdir(path.dirname(path.join(dir, file)), { recursive: true });
      await fs.writeFile(path.join(dir, file), content);
    }
    return (args: string[], timeoutMs = 120_000): Promise<CliResult> =>
      runProgram('docker-compose', ['--project-directory', dir, '-f', path.join(dir, 'docker-compose.yml'), '-p', name, ...args], {
        env: { DOCKER_HOST: `unix://${daemon.socket}`, COMPOSE_INTERACTIVE_NO_CLI: '1' },
        timeoutMs,
      });
  }
  const ok = (res: CliResult, what: string) => expectOk(res, `docker-compose ${what}`);
  const inspect = async (ref: string) => (await daemon.api(`/containers/${ref}/json`)).json;
  const leftovers = async (prefix: string) => ({
    containers: ((await daemon.api('/containers/json?all=1')).json as { Names: string[] }[]).filter((c) => c.Names.some((n) => n.startsWith(`/${prefix}_`))).length,
    networks: ((await daemon.api('/networks')).json as { Name: string }[]).filter((n) => n.Name.startsWith(`${prefix}_`)).length,
    volumes: (((await daemon.api('/volumes')).json.Volumes ?? []) as { Name: string }[]).filter((v) => v.Name.startsWith(`${prefix}_`)).length,
  });

  it('web and backend: service names, named volume, published port, env_file, exec, logs, restart, down -v', async () => {
    const compose = await project('shop', {
      'docker-compose.yml': `version: "2.4"
services:
  backend:
    image: compose/busybox:latest
    stop_grace_period: 1s
    command: ["sh", "-c", "echo $$GREETING from backend > /data/index.html; echo backend up; exec /bin/busybox httpd -f -p 80 -h /data"]
    env_file: backend.env
    volumes:
      - data:/data
  web:
    image: compose/busybox:latest
    stop_grace_period: 1s
    command: ["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/www"]
    depends_on: [backend]
    environment:
      ROLE: web
    ports:
      - "127.0.0.1::8080"
    restart: unless-stopped
    mem_limit: 64m
volumes:
  data: {}
`,
      'backend.env': 'GREETING=hello\n',
    });
    ok(await compose(['up', '-d']), 'up');
    const ps = ok(await compose(['ps']), 'ps').stdout;
    expect(ps).toMatch(/shop_backend_1\s.*Up/);
    expect(ps).toMatch(/shop_web_1\s.*Up\s+127\.0\.0\.1:\d+->8080\/tcp/);
    const port = Number(/127\.0\.0\.1:(\d+)->8080/.exec(ps)![1]);
    expect(await httpGet(port)).toBe('hello from web\n');
    // web reaches backend by its service name; backend's page comes from env_file, kept in the volume.
    const fromWeb = ok(await compose(['exec', '-T', 'web', 'sh', '-c', 'printf "GET / HTTP/1.0\\r\\n\\r\\n" | /bin/busybox nc backend 80; echo; echo ROLE=$ROLE']), 'exec').stdout;
    expect(fromWeb).toContain('hello from backend');
    expect(fromWeb).toContain('ROLE=web');
    expect(ok(await compose(['logs', 'backend']), 'logs').stdout).toContain('backend up');
    const web = await inspect('shop_web_1');
    expect(web.HostConfig.Memory).toBe(64 * 1024 * 1024);
    expect(web.HostConfig.RestartPolicy.Name).toBe('unless-stopped');
    const started = web.State.StartedAt;
    ok(await compose(['restart', 'web']), 'restart');
    expect((await inspect('shop_web_1')).State.StartedAt).not.toBe(started);
    // up again with nothing changed keeps the containers (compose compares what inspect shows).
    const again = ok(await compose(['up', '-d']), 'up (again)');
    expect(again.stderr).not.toMatch(/Recreat|needs to be recreated/);
    ok(await compose(['down', '-v']), 'down -v');
    expect(await leftovers('shop')).toEqual({ containers: 0, networks: 0, volumes: 0 });
  });

  it('depends_on with service_healthy starts the app only once the database is healthy', async () => {
    const compose = await project('health', {
      'docker-compose.yml': `version: "2.4"
services:
  db:
    image: compose/busybox:latest
    stop_grace_period: 1s
    command: ["sh", "-c", "sleep 2; touch /tmp/ready; exec sleep 3600"]
    healthcheck:
      test: ["CMD", "test", "-f", "/tmp/ready"]
      interval: 1s
      timeout: 2s
      retries: 20
  app:
    image: compose/busybox:latest
    stop_grace_period: 1s
    command: ["sleep", "3600"]
    depends_on:
      db:
        condition: service_healthy
`,
    });
    ok(await compose(['up', '-d']), 'up');
    const db = await inspect('health_db_1');
    const app = await inspect('health_app_1');
    expect(db.State.Health.Status).toBe('healthy');
    const firstHealthy = db.State.Health.Log.find((l: { ExitCode: number }) => l.ExitCode === 0);
    expect(new Date(app.State.StartedAt).getTime()).toBeGreaterThanOrEqual(new Date(firstHealthy.End).getTime());
    expect(ok(await compose(['ps']), 'ps').stdout).toMatch(/health_db_1\s.*Up \(healthy\)/);
    ok(await compose(['down', '-v']), 'down -v');
    expect(await leftovers('health')).toEqual({ containers: 0, networks: 0, volumes: 0 });
  });

  it('a build: section with entrypoint and command, scaled to two replicas', async () => {
    const compose = await project('built', {
      'docker-compose.yml': `version: "2.4"
services:
  worker:
    build: ./app
    stop_grace_period: 1s
    entrypoint: ["sh", "-c"]
    command: ["cat /built.txt; echo worker $$HOSTNAME; exec sleep 3600"]
`,
      'app/Dockerfile': 'FROM compose/busybox:latest\nRUN echo built by compose > /built.txt\n',
    });
    ok(await compose(['up', '-d', '--build', '--scale', 'worker=2']), 'up --build --scale');
    const ps = ok(await compose(['ps']), 'ps').stdout;
    expect(ps).toMatch(/built_worker_1\s.*Up/);
    expect(ps).toMatch(/built_worker_2\s.*Up/);
    const logs = ok(await compose(['logs', 'worker']), 'logs').stdout;
    expect(logs.match(/built by compose/g)?.length).toBe(2);
    ok(await compose(['down', '-v', '--rmi', 'local']), 'down -v --rmi local');
    expect(await leftovers('built')).toEqual({ containers: 0, networks: 0, volumes: 0 });
    expect((await daemon.api('/images/json')).json.some((i: { RepoTags: string[] }) => i.RepoTags?.some((t) => t.startsWith('built_worker')))).toBe(false);
  });
});
