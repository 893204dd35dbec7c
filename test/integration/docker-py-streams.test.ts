/**
 * Hijacked streams as docker-py uses them (Debian's python3-docker, root): exec output reaches
 * clients that read the 101 headers through a buffered reader and then read the raw socket
 * (output the process wrote before the hijack must not travel in the same read as the headers),
 * and detach keys (default, from the client's config, per request) close the client's stream
 * while the container and its stdin go on.
 */
import { promises as fs } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOk, runProgram, startDaemon, type RunningDaemon } from '../helpers/daemon';
import { hasPythonModules, isRoot, rootReason } from '../helpers/env';
import { busyboxArchive, makeTempDir } from '../helpers/fixtures';

const hasDockerPy = hasPythonModules('docker');
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

const DETACH = `
import socket, sys, time, docker
api = docker.APIClient(base_url='unix://' + sys.argv[1], version='1.41')
mode = sys.argv[3]
keys = {'default': b'\\x10\\x11', 'config': b'\\x10', 'arg': b'\\x18'}[mode]
if mode != 'default':
    api._general_configs['detachKeys'] = 'ctrl-p'
if sys.argv[4] == 'attach':
    sock = api.attach_socket(sys.argv[2], {'stdin': True, 'stream': True, **({'detachKeys': 'ctrl-x'} if mode == 'arg' else {})})
else:
    exec_id = api.exec_create(sys.argv[2], 'cat', stdin=True, tty=True, stdout=True, **({'detach_keys': 'ctrl-x'} if mode == 'arg' else {}))
    sock = api.exec_start(exec_id, tty=True, socket=True)
raw = sock._sock if hasattr(sock, '_sock') else sock
raw.settimeout(5)
for k in keys:
    raw.sendall(bytes([k]))
    time.sleep(0.3)
try:
    raw.sendall(b'make sure the socket is closed\\n')
    data = raw.recv(128)
except OSError:
    data = b''
print('detached' if data == b'' else 'still attached: %r' % data)
`;

describe.skipIf(!isRoot || !hasDockerPy)(`hijacked streams through docker-py (${reason})`, () => {
  let work: string;
  let daemon: RunningDaemon;

  beforeAll(async () => {
    work = await makeTempDir('berth-execrace-');
    const archive = await busyboxArchive(work, 'execrace/busybox:latest');
    daemon = await startDaemon();
    expectOk(await daemon.cli(['load', '-i', archive]));
    expectOk(await daemon.cli(['run', '-d', '--name', 'target', '--network', 'none', 'execrace/busybox:latest', 'sleep', '3600']));
    expectOk(await daemon.cli(['run', '-d', '-i', '-t', '--name', 'catter', '--network', 'none', 'execrace/busybox:latest', 'cat']));
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

  for (const via of ['attach', 'exec']) {
    it(`${via}: the default, configured and per-request detach keys close the client's stream, the container runs on`, async () => {
      for (const mode of ['default', 'config', 'arg']) {
        const res = expectOk(await runProgram('python3', ['-c', DETACH, daemon.socket, 'catter', mode, via], { timeoutMs: 30_000 }), `python3 (${via}, ${mode})`);
        expect(res.stdout.trim(), `${via} with ${mode} keys`).toBe('detached');
      }
      expect((await daemon.api('/containers/catter/json')).json.State.Running).toBe(true);
      // What is typed after a detach never reached the container's stdin: a fresh attach still works.
      const bad = await daemon.api('/containers/catter/attach?stream=1&stdin=1&detachKeys=shift-a', { method: 'POST' });
      expect(bad.status).toBe(400);
      expect(bad.json.message).toContain('Invalid detach keys');
    });
  }
});
