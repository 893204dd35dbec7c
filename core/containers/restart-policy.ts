/**
 * Docker's restart policies (no, always, unless-stopped, on-failure[:max]) and its back-off
 * between restarts, as pure functions of the record: the monitor (monitor.ts) acts on them.
 */
import type { ContainerRecord } from './record';

/** The longest wait between two restarts. */
const MAX_BACKOFF_MS = 60_000;

/**
 * Whether the policy brings the container back after it ended with `exitCode`. A manual stop
 * ends every policy, except that `always` still starts it with the daemon (`daemonStart`).
 */
export function shouldRestart(rec: ContainerRecord, exitCode: number, daemonStart = false): boolean {
  const policy = rec.HostConfig.RestartPolicy ?? { Name: 'no' };
  if (rec.ManuallyStopped && !(daemonStart && policy.Name === 'always')) return false;
  switch (policy.Name) {
    case 'always':
    case 'unless-stopped':
      return true;
    case 'on-failure':
      return exitCode !== 0 && (!policy.MaximumRetryCount || rec.RestartCount < policy.MaximumRetryCount);
    default:
      return false;
  }
}

/** Milliseconds before the next restart: 100 ms doubling per restart so far, at most a minute. */
export function restartDelay(rec: ContainerRecord): number {
  return Math.min(MAX_BACKOFF_MS, 100 * 2 ** Math.min(rec.RestartCount, 10));
}
