import { defineConfig } from 'vitest/config';

// Tests drive real page faults, real sockets and child processes: run files one
// at a time (a 2-core machine; timing-sensitive RTT checks) with generous timeouts.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
  },
});
