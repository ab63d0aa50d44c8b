/**
 * `p`, or a rejection `<what> timed out after <ms> ms` once `ms` pass first. The timer does not keep the process
 * alive, and a rejection of `p` after the timeout is absorbed (never an unhandled rejection).
 */
export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  p.catch(() => undefined);
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
    timer.unref();
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
