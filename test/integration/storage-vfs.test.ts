import { describe } from 'vitest';
import { storageConformance } from '../conformance/storage';
import { isRoot, rootReason } from '../helpers/env';
import { syscalls } from '../../core/sys/syscalls';
import { VfsDriver } from '../../plugins/storage-vfs/driver';

describe.skipIf(!isRoot)(`vfs storage (${rootReason})`, () => {
  storageConformance('vfs', async (stateDir) => {
    const driver = new VfsDriver(stateDir, syscalls, { copyConcurrency: 16 });
    await driver.init();
    return driver;
  });
});
