import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'examples/**/*.test.ts'],
    // Integration tests start real registries, daemons and mounts: give them room, and keep the
    // two cores of CI machines from being oversubscribed.
    testTimeout: 60_000,
    hookTimeout: 120_000,
    fileParallelism: true,
    maxWorkers: 2,
    setupFiles: ['test/helpers/setup.ts'],
    // Integration tests run the compiled berthd and CLI: compile dist/ once when it is stale.
    globalSetup: ['test/helpers/global-setup.ts'],
  },
});
