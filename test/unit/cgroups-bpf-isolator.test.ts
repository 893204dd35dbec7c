/**
 * isolator.cgroups' device handling against a fake cgroup tree: which cgroup gets the device list
 * (v1 devices controller, else a BPF program on the v2 cgroup), when (setup, before the process
 * joins), what the program is, and how `update` with new device rules replaces it.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import type { IsolationTarget } from '../../core/contracts/isolator';
import { devicePolicy, deviceProgram } from '../../plugins/isolator-cgroups/devices';
import { CgroupsIsolator } from '../../plugins/isolator-cgroups/isolator';
import { detectLayout, type HierarchyChoice } from '../../plugins/isolator-cgroups/layout';
import { FakeCgroupTree, type FakeHierarchy } from '../helpers/cgroups-fake';

const MiB = 1024 * 1024;
const V1: FakeHierarchy[] = [
  { kind: 'v1', controllers: ['memory'], own: '/' },
  { kind: 'v1', controllers: ['devices'], own: '/' },
];
const V2: FakeHierarchy = { kind: 'v2', controllers: [], own: '/user.slice/berthd' };

describe('isolator.cgroups device rules on a fake tree', () => {
  let tree: FakeCgroupTree;
  let stateDir: string;
  const target = (hostConfig: Record<string, unknown> = {}): IsolationTarget => ({ containerId: 'c1', stateDir, hostConfig });

  function make(hierarchies: FakeHierarchy[], use: HierarchyChoice = 'auto', v2Controllers: string[] = []): CgroupsIsolator {
    tree = new FakeCgroupTree(hierarchies, v2Controllers);
    stateDir = mkdtempSync('/tmp/berth-cgstate-');
    return new CgroupsIsolator({ parent: 'berth', hierarchy: use }, detectLayout({ mountinfo: tree.mountinfo, selfCgroup: tree.selfCgroup }, false, use), tree.fs, tree.bpf);
  }

  afterEach(() => {
    tree.dispose();
    rmSync(stateDir, { recursive: true, force: true });
  });

  const v2Dir = () => tree.path('unified', 'user.slice', 'berthd', 'berth', 'c1');

  it("on v2, attaches the default program to the container's cgroup at setup, before the process joins", async () => {
    const iso = make([V2]);
    await iso.setup(target());
    expect([...tree.devicePrograms.keys()]).toEqual([v2Dir()]);
    expect(tree.devicePrograms.get(v2Dir())).toEqual(deviceProgram(devicePolicy({})));
    expect(tree.writesTo('cgroup.procs')).toEqual([]);
    await iso.cleanup(target());
    expect(existsSync(v2Dir())).toBe(false);
  });

  it('uses only the unified hierarchy on a hybrid host when hierarchy is v2', async () => {
    const iso = make([...V1, V2], 'v2');
    expect(iso.info().cgroups.version).toBe('2');
    await iso.setup(target({ Privileged: true }));
    expect(tree.devicePrograms.get(v2Dir())).toEqual(deviceProgram({ allowAll: true, rules: [] }));
    expect(tree.writesTo('devices.allow')).toEqual([]);
    expect(existsSync(tree.path('devices', 'berth', 'c1'))).toBe(false);
  });

  it('on hybrid, writes the v1 devices controller (with the extra rules) and attaches no program', async () => {
    const iso = make([...V1, V2]);
    await iso.setup(target({ DeviceCgroupRules: ['c 10:200 rwm'], Devices: [{ PathOnHost: '/dev/null', CgroupPermissions: 'r' }] }));
    expect(tree.devicePrograms.size).toBe(0);
    expect(tree.writesTo('devices.deny')).toEqual(['a']);
    expect(tree.writesTo('devices.allow').slice(-2)).toEqual(['c 1:3 r', 'c 10:200 rwm']);
  });

  it('falls back to a program on the unified cgroup when v1 has no devices controller', async () => {
    const iso = make([V1[0], V2]);
    await iso.setup(target());
    expect([...tree.devicePrograms.keys()]).toEqual([v2Dir()]);
  });

  it('refuses a bad device before making any cgroup', async () => {
    const iso = make([V2]);
    await expect(iso.setup(target({ Devices: [{ PathOnHost: '/nonexistent/dev' }] }))).rejects.toThrow(/custom device "\/nonexistent\/dev": no such file or directory/);
    expect(existsSync(v2Dir())).toBe(false);
    expect(tree.devicePrograms.size).toBe(0);
  });

  it('replaces the program on update when device rules change, and only then', async () => {
    const iso = make([V2], 'auto', ['memory']);
    await iso.setup(target());
    const first = tree.devicePrograms.get(v2Dir());
    await iso.update(target(), { Memory: 64 * MiB });
    expect(tree.devicePrograms.get(v2Dir())).toBe(first);
    await iso.update(target(), { DeviceCgroupRules: ['c 10:200 rw'] });
    expect(tree.devicePrograms.get(v2Dir())).toEqual(deviceProgram(devicePolicy({ DeviceCgroupRules: ['c 10:200 rw'] })));
    // A bad rule changes nothing, not even the limits asked for with it.
    const now = tree.devicePrograms.get(v2Dir());
    await expect(iso.update(target(), { Memory: 32 * MiB, DeviceCgroupRules: ['c 10:200 rwx'] })).rejects.toThrow(/DeviceCgroupRules\[0\]/);
    expect(tree.devicePrograms.get(v2Dir())).toBe(now);
    expect(tree.read('unified', 'user.slice', 'berthd', 'berth', 'c1', 'memory.max')).toBe(String(64 * MiB));
  });

  it('on v1, update allows new rules before denying dropped ones', async () => {
    const iso = make(V1);
    await iso.setup(target({ DeviceCgroupRules: ['c 10:200 rwm'] }));
    tree.writes.length = 0;
    await iso.update(target({ DeviceCgroupRules: ['c 10:200 rwm'] }), { DeviceCgroupRules: ['c 10:232 rw'] });
    expect(tree.writes.map(([f, v]) => `${f.split('/').pop()} ${v}`)).toEqual(['devices.allow c 10:232 rw', 'devices.deny c 10:200 rwm']);
  });
});
