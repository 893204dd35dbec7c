/**
 * The isolator conformance suite, run through the public `berth/testing` entry on the example
 * isolator (as a plugin author would) and on the built-in namespaces and seccomp isolators.
 */
// The same module the package exports as `berth/testing` (vite does not resolve the self-reference).
import { isolatorConformance } from '../../core/testing';
import { ReadonlyRootfsIsolator } from '../../examples/isolator-readonly/isolator';
import { NamespacesIsolator } from '../../plugins/isolator-namespaces/isolator';
import { SeccompIsolator } from '../../plugins/isolator-seccomp/isolator';

isolatorConformance('isolator.readonly (example)', () => new ReadonlyRootfsIsolator({ tmpfs: ['/tmp', '/run'], tmpfsSize: '64m' }));
isolatorConformance('isolator.namespaces', () => new NamespacesIsolator({ userNamespace: null }));
isolatorConformance('isolator.seccomp', () => new SeccompIsolator('x86_64'));
