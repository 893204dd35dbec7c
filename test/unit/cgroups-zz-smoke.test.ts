import { test, expect } from 'vitest';
import { CgroupsIsolator } from '../../plugins/isolator-cgroups/isolator';
import { mkdtempSync } from 'node:fs';
test('smoke', async () => {
  const iso = new CgroupsIsolator({ parent: 'berth' });
  console.log(iso.info(), iso.layout.hierarchies.map(h => h.ownDir));
  const stateDir = mkdtempSync('/tmp/cgs-');
  const target = { containerId: 'smoke' + process.pid, stateDir, hostConfig: { Memory: 32 << 20, NanoCpus: 5e8, PidsLimit: 20, CpuShares: 512, CpusetCpus: '0', MemoryReservation: 16 << 20 } };
  const t0 = performance.now();
  await iso.setup(target);
  const t1 = performance.now();
  const plan: any = {};
  iso.plan(target, plan);
  console.log(plan, (t1 - t0).toFixed(2));
  console.log(JSON.stringify(await iso.stats(target)).slice(0, 500));
  const t2 = performance.now();
  await iso.cleanup(target);
  console.log('cleanup', (performance.now() - t2).toFixed(2));
});
