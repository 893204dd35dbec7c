/**
 * `berth/testing`: the conformance suites plugin authors run against their own implementations.
 * They import describe/it/expect from vitest (a dev dependency of the plugin), not globals.
 *
 *   import { storageConformance, isolatorConformance } from 'berth/testing';
 */
export { storageConformance } from '../test/conformance/storage';
export { isolatorConformance, basePlan } from '../test/conformance/isolator';
