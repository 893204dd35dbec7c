/**
 * The conformance suites run through the public `berth/testing` entry on the example plugins (as
 * a plugin author would) and on the built-in namespaces and seccomp isolators. The example
 * runtime's run is in runtime-conformance.test.ts, next to the built-in runtimes.
 */
import { describe } from 'vitest';
// The same module the package exports as `berth/testing` (vite does not resolve the self-reference).
import { isolatorConformance, storageConformance } from '../../core/testing';
import { ReadonlyRootfsIsolator } from '../../examples/isolator-readonly/isolator';
import { ReflinkDriver } from '../../examples/storage-reflink/driver';
import { NamespacesIsolator } from '../../plugins/isolator-namespaces/isolator';
import { SeccompIsolator } from '../../plugins/isolator-seccomp/isolator';
import { isRoot, rootReason } from '../helpers/env';

isolatorConformance('isolator.readonly (example)', () => new ReadonlyRootfsIsolator({ tmpfs: ['/tmp', '/run'], tmpfsSize: '64m' }));
isolatorConformance('isolator.namespaces', () => new NamespacesIsolator({ userNamespace: null }));
isolatorConformance('isolator.seccomp', () => new SeccompIsolator('x86_64'));

describe.skipIf(!isRoot)(`storage.reflink (example) (${rootReason})`, () => {
  storageConformance('storage.reflink (example)', async (stateDir) => {
    const driver = new ReflinkDriver(stateDir);
    await driver.init();
    return driver;
  });
});
