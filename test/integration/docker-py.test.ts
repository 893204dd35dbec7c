/**
 * docker-py (Debian's python3-docker) drives a real berthd: the pytest files in
 * test/integration/docker-py/ run against DOCKER_HOST, and this test fails when pytest does.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningDaemon, expectOk, runProgram, startDaemon } from '../helpers/daemon';
import { isRoot, rootReason } from '../helpers/env';
import { pushBusybox } from '../helpers/fixtures';
import { type RunningRegistry, startRegistry } from '../helpers/registry';

const PYTHON = '/usr/bin/python3';
const SUITE = path.join(__dirname, 'docker-py');

function hasDockerPy(): boolean {
  try {
    require('node:child_process').execFileSync(PYTHON, ['-c', 'import docker, pytest'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const skipReason = !isRoot ? rootReason : !hasDockerPy() ? `needs ${PYTHON} with docker and pytest (apt-get install python3-docker python3-pytest)` : '';

describe.skipIf(!!skipReason)(`docker-py against berthd${skipReason ? ` (${skipReason})` : ''}`, () => {
  let registry: RunningRegistry;
  let daemon: RunningDaemon;
  let image: string;

  beforeAll(async () => {
    registry = await startRegistry();
    image = `${registry.host}/test/busybox:latest`;
    await pushBusybox(registry.host, 'test/busybox:latest', { cmd: ['sh'] });
    daemon = await startDaemon();
    expectOk(await daemon.cli(['pull', '-q', image]));
  }, 120_000);

  afterAll(async () => {
    if (daemon) {
      await daemon.removeAllContainers();
      await daemon.stop();
    }
    await registry?.stop();
  });

  it('passes its pytest suite', async () => {
    // BERTH_PYTEST_ARGS runs a part of the suite (`-k health`, a file) while working on it.
    const args = ['-m', 'pytest', '-q', '-p', 'no:cacheprovider', '-o', 'console_output_style=classic', ...(process.env.BERTH_PYTEST_ARGS?.split(' ') ?? [SUITE])];
    const res = await runProgram(PYTHON, args, {
      env: { DOCKER_HOST: `unix://${daemon.socket}`, BERTH_TEST_IMAGE: image, PYTHONDONTWRITEBYTECODE: '1' },
      timeoutMs: 600_000,
    });
    if (res.code !== 0) throw new Error(`pytest exited ${res.code}\n${res.stdout}\n${res.stderr}\nberthd:\n${daemon.logs().slice(-4000)}`);
    expect(res.stdout).toMatch(/passed/);
  }, 620_000);
});
