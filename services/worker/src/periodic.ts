/**
 * The worker's periodic tasks (sweep, guard, archiving, orphan withdrawal): a task never overlaps
 * itself in this process and, with `lock`, runs in one worker at a time (whoever takes the lock key
 * for that long); a failure is logged and the next tick tries again.
 *
 * A run that has not finished after `stallMs` no longer blocks the next tick: it is reported (warn)
 * and a new run starts beside it. The worker's Redis client queues and retries commands forever (it
 * must ride out a failover), so one command lost in a failover could otherwise stop a task in this
 * process for good, and with the sweep stopped no hold would expire. The tasks are idempotent (jobs
 * with deterministic ids, rebuilds under a lock), so a stalled run finishing late does no harm.
 */
export interface PeriodicLog {
  warn(fields: object, message: string): void;
}

export interface PeriodicOptions {
  log: PeriodicLog;
  /** A run older than this is considered stalled (ms). */
  stallMs: number;
  /** Take `key` with SET NX PX `ms` first; skip the tick when another process holds it. */
  lock?: { take: (key: string, ms: number) => Promise<boolean>; key: string; ms: number };
  now?: () => number;
}

export function periodicTask(what: string, run: () => Promise<unknown>, opts: PeriodicOptions): () => Promise<void> {
  const now = opts.now ?? (() => performance.now());
  /** When the latest run started, or null when none is in progress. */
  let startedAt: number | null = null;
  return async () => {
    const at = now();
    if (startedAt !== null) {
      const age = at - startedAt;
      if (age < opts.stallMs) return;
      opts.log.warn({ stalledMs: Math.round(age) }, `${what} has not finished in ${Math.round(age / 1000)} s; starting it again`);
    }
    // A new run starts at least stallMs after the one it replaces, so its start time tells them apart.
    startedAt = at;
    try {
      if (opts.lock && !(await opts.lock.take(opts.lock.key, opts.lock.ms))) return;
      await run();
    } catch (error) {
      opts.log.warn({ err: error }, `${what} failed`);
    } finally {
      // A stalled run finishing late leaves the newer run's mark alone.
      if (startedAt === at) startedAt = null;
    }
  };
}
