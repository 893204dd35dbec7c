/**
 * Exec output reaches clients that read the 101 headers through a buffered reader and then read
 * the raw socket (docker-py does): output the process wrote before the hijack must not travel
 * in the same read as the headers. Driven with Debian's python3-docker (root).
 */
import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOk, runProgram, startDaemon, type RunningDaemon } from '../helpers/daemon';
import { isRoot, rootReason } from '../helpers/env';
import { buildBusyboxLayout, makeTempDir } from '../helpers/fixtures';

function hasPythonDocker(): boolean {
  try {
    execFileSync('python3', ['-c', 'import docker'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
const hasDockerPy = hasPythonDocker();
const reason = !isRoot ? rootReason : hasDockerPy ? 'root' : 'needs python3-docker (Debian: apt-get install python3-docker)';

const SCRIPT = `
import sys, docker
c = docker.DockerClient(base_url='unix://' + sys.argv[1], version='1.41')
ct = c.containers.get(sys.argv[2])
empty = sum(1 for _ in range(30) if ct.exec_run(['echo', 'hello']).output != b'hello\\n')
split = 0
for _ in range(15):
    if ct.exec_run(['sh', '-c', 'echo out; echo err >&2'], demux=True).output != (b'out\\n', b'err\\n'):
        split += 1
print(empty, split)
`;

describe.skipIf(!isRoot || !hasDockerPy)(`exec output through docker-py (${reason})`, () => {
  let work: string;
  let daemon: RunningDaemon;

  beforeAll(async () => {
    work = await makeTempDir('berth-execrace-');
    const layout = await buildBusyboxLayout(path.join(work, 'layout'));
    const archive = path.join(work, 'image.tar');
    execFileSync('skopeo', ['copy', '-q', `oci:${layout.ref}`, `docker-archive:${archive}:execrace/busybox:latest`]);
    daemon = await startDaemon();
    expectOk(await daemon.cli(['load', '-i', archive]));
    expectOk(await daemon.cli(['run', '-d', '--name', 'target', '--network', 'none', 'execrace/busybox:latest', 'sleep', '3600']));
  });

  afterAll(async () => {
    if (daemon) {
      await daemon.removeAllContainers();
      await daemon.stop();
    }
    if (work) await fs.rm(work, { recursive: true, force: true });
  });

  it('30 of 30 short execs and 15 of 15 demuxed stdout-then-stderr execs return all their output', async () => {
    const res = expectOk(await runProgram('python3', ['-c', SCRIPT, daemon.socket, 'target']), 'python3');
    expect(res.stdout.trim()).toBe('0 0');
  });
});
