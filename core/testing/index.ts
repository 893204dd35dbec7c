/**
 * `berth/testing`: the conformance suites plugin authors run against their own implementations.
 * They import describe/it/expect from vitest (a dev dependency of the plugin), not globals.
 * The fakes below stand in for plugins in tests of the kernel.
 *
 *   import { storageConformance, isolatorConformance, runtimeConformance } from 'berth/testing';
 */
export { storageConformance } from '../../test/conformance/storage';
export { isolatorConformance, basePlan } from '../../test/conformance/isolator';
export { runtimeConformance } from '../../test/conformance/runtime';

// Fakes for tests of the kernel itself (lifecycle, restart policy, isolator order) without root.
export { FakeRuntime } from './fake-runtime';
export { MemoryStorage } from './memory-storage';
export { RecordingIsolator } from './recording-isolator';
export { IsolatorChain, type IsolatorPhase } from '../containers/isolator-chain';
