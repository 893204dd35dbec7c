import { describe } from 'vitest';
import { storageConformance } from '../conformance/storage';
import { isRoot, rootReason } from '../helpers/env';
import { syscalls } from '../../core/sys/syscalls';
import { OverlayDriver } from '../../plugins/storage-overlay/driver';

describe.skipIf(!isRoot)(`overlay storage (${rootReason})`, () => {
  storageConformance('overlay', async (stateDir) => {
    const driver = new OverlayDriver(stateDir, syscalls, { mountOptions: [] });
    await driver.init();
    await driver.probe();
    return driver;
  });
});
