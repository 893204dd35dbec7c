import { describe, expect, it } from 'vitest';
import type { LaunchPlan } from '../../core/contracts/launch';
import { capabilityMask, serializePlan } from '../../core/launcher/index';
import { DEFAULT_CAPABILITIES } from '../../plugins/isolator-namespaces/defaults';
import { effectiveCapabilities } from '../../plugins/isolator-namespaces/isolator';

// No root needed: the plan format and the capability masks (the C reader: test/unit/launch-plan.test.ts).
const plan = (over: Partial<LaunchPlan> = {}): LaunchPlan => ({
  namespaces: ['pid', 'mount'],
  rootfs: '/r',
  mounts: [],
  maskedPaths: [],
  readonlyPaths: [],
  capabilities: [],
  noNewPrivileges: false,
  process: { args: ['sh'], env: [], cwd: '/', uid: 0, gid: 0, additionalGids: [], terminal: false },
  ...over,
});

describe('launch plan format', () => {
  it("gives Docker's default capabilities the mask 00000000a80425fb", () => {
    expect(capabilityMask(DEFAULT_CAPABILITIES)).toBe('00000000a80425fb');
    expect(capabilityMask(effectiveCapabilities({ privileged: false, capAdd: [], capDrop: ['CAP_KILL'] }))).toBe('00000000a80425db');
  });

  it('escapes newlines, tabs and backslashes in values and refuses NUL', () => {
    const text = serializePlan(plan({ process: { ...plan().process, args: ['sh', '-c', 'a\nb\tc\\d'] } }), { stateDir: '/s' });
    expect(text.split('\n')[0]).toBe('berth-plan 1');
    expect(text).toContain('arg a\\nb\\tc\\\\d\n');
    expect(text).toContain('namespace pid\nnamespace mount\n');
    expect(() => serializePlan(plan({ process: { ...plan().process, args: ['a\0b'] } }), { stateDir: '/s' })).toThrow(/NUL/);
    expect(() => serializePlan(plan({ namespaces: ['bogus'] }), { stateDir: '/s' })).toThrow(/unknown namespace "bogus"/);
    expect(() => serializePlan(plan({ rootfs: 'relative' }), { stateDir: '/s' })).toThrow(/rootfs must be an absolute path/);
    expect(() => serializePlan(plan({ rlimits: [{ type: 'nofiles', soft: 1, hard: 1 }] }), { stateDir: '/s' })).toThrow(/unknown rlimit "nofiles"/);
  });
});
