/**
 * BullMQ's lock settings from WORKER_LOCK_MS (docs/configuration.md): how long a job stays claimed by a worker that
 * stopped renewing it (a crashed process), and how often every worker looks for such jobs. After a SIGKILL the
 * jobs the process held run again within about lock + interval. `floorMs`: a worker whose job may legitimately
 * take long (a Cloud API call with its timeout) keeps at least that. Without `lockMs`, BullMQ's defaults (30 s).
 */
export function workerLockOptions(lockMs: number | undefined, floorMs = 0): { lockDuration?: number; stalledInterval?: number } {
  if (lockMs === undefined) return floorMs > 30_000 ? { lockDuration: floorMs } : {};
  return { lockDuration: Math.max(lockMs, floorMs), stalledInterval: lockMs };
}
