/**
 * The classic builder as docker-py drives it (Debian's python3-docker, root): extra_hosts reach
 * RUN, cache_from limits the cache to the named images' steps, and RUN's stderr comes back
 * wrapped in the red escape codes dockerd adds.
 */
import { promises as fs } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOk, runProgram, startDaemon, type RunningDaemon } from '../helpers/daemon';
import { hasPythonModules, isRoot, rootReason } from '../helpers/env';
import { busyboxArchive, makeTempDir } from '../helpers/fixtures';

const hasDockerPy = hasPythonModules('docker');
const reason = !isRoot ? rootReason : hasDockerPy ? 'root' : 'needs python3-docker (Debian: apt-get install python3-docker)';

const PRELUDE = `
import io, sys, docker
api = docker.APIClient(base_url='unix://' + sys.argv[1], version='1.41')
def build(lines, **kw):
    return list(api.build(fileobj=io.BytesIO('\\n'.join(lines).encode()), decode=True, **kw))
`;

describe.skipIf(!isRoot || !hasDockerPy)(`builds through docker-py (${reason})`, () => {
  let work: string;
  let daemon: RunningDaemon;

  beforeAll(async () => {
    work = await makeTempDir('berth-pybuild-');
    const archive = await busyboxArchive(work, 'busybox:latest');
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

  const python = async (body: string) => expectOk(await runProgram('python3', ['-c', PRELUDE + body, daemon.socket]), 'python3').stdout.trim();

  it('extra_hosts are in /etc/hosts of every RUN step', async () => {
    const out = await python(`
msgs = build(['FROM busybox', 'RUN cat /etc/hosts > /hosts-file', 'CMD ["cat", "/hosts-file"]'], tag='pyb/hosts', extra_hosts={'extrahost.local.test': '127.0.0.1', 'hello.world.test': '127.0.0.1'})
assert not any('errorDetail' in m for m in msgs), msgs
`);
    expect(out).toBe('');
    const hosts = expectOk(await daemon.cli(['run', '--rm', '--network', 'none', 'pyb/hosts'])).stdout;
    expect(hosts).toContain('127.0.0.1\textrahost.local.test');
    expect(hosts).toContain('127.0.0.1\thello.world.test');
  });

  it('cache_from uses the steps of the named image only', async () => {
    const out = await python(`
lines = ['FROM busybox', 'ENV FOO=bar', 'RUN touch baz', 'RUN touch bax']
build(lines, tag='pyb/build1')
hits = lambda msgs: sum('Using cache' in m.get('stream', '') for m in msgs)
print(hits(build(lines, tag='pyb/build2', cache_from=['pyb/build1'])))
api.remove_image('pyb/build2')
print(hits(build(lines, tag='pyb/build2', cache_from=['nosuchtag'])))
`);
    expect(out.split('\n')).toEqual(['3', '0']);
  });

  it("RUN's stderr arrives wrapped in dockerd's red escape codes, stdout as is", async () => {
    const out = await python(`
msgs = build(['FROM busybox', 'RUN sh -c ">&2 echo Ancient Temple; echo plain"'], nocache=True)
streams = [m.get('stream') for m in msgs]
print(repr('\\x1b[91mAncient Temple\\n\\x1b[0m' in streams), repr('plain\\n' in streams))
`);
    expect(out).toBe('True True');
  });
});
