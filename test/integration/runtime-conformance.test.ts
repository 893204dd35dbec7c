/**
 * The runtime conformance suite, through the public `berth/testing` entry, on the built-in
 * runtimes (runtime.native, runtime.oci with runc) and on the example runtime.timed wrapping
 * runtime.native (as a plugin author would test theirs).
 */
import path from 'node:path';
import { describe } from 'vitest';
// The same module the package exports as `berth/testing` (vite does not resolve the self-reference).
import { runtimeConformance } from '../../core/testing';
import type { Runtime } from '../../core/contracts/runtime';
import { TimedRuntime } from '../../examples/runtime-timed/runtime';
import nativePlugin from '../../plugins/runtime-native/index';
import ociPlugin from '../../plugins/runtime-oci/index';
import { hasCommand, isRoot, rootReason } from '../helpers/env';
import { initPlugin } from '../helpers/rootfs';

describe.skipIf(!isRoot)(`runtimes (${rootReason})`, () => {
  runtimeConformance('runtime.native', (dir) => initPlugin<unknown, Runtime>(nativePlugin, dir));
  runtimeConformance('runtime.timed (example, around runtime.native)', async (dir) => new TimedRuntime(await initPlugin<unknown, Runtime>(nativePlugin, dir), path.join(dir, 'timings.jsonl')));
  describe.skipIf(!hasCommand('runc'))(`with runc (${hasCommand('runc') ? 'runc found' : 'needs runc: apt-get install runc'})`, () => {
    runtimeConformance('runtime.oci (runc)', (dir) => initPlugin<unknown, Runtime>(ociPlugin, dir));
  });
});
