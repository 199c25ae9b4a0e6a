/**
 * What runs when the simulator's state is disposed, for every call and pause in flight. They all wait
 * on one AbortSignal, and an EventTarget walks its whole list of listeners to add one (checking for a
 * duplicate) and again to remove one: with thousands of confirm calls, webhooks and pauses in flight at
 * a drop, that was about 4 % of the simulator's CPU. Here a signal gets one listener, and each waiter
 * is added to and taken from a Set.
 */
const waiters = new WeakMap<AbortSignal, Set<() => void>>();

/** Runs `fn` once when `signal` aborts. @returns what takes `fn` off again. */
export function onAbort(signal: AbortSignal, fn: () => void): () => void {
  let set = waiters.get(signal);
  if (set === undefined) {
    const fresh = new Set<() => void>();
    waiters.set(signal, fresh);
    signal.addEventListener('abort', () => {
      const all = [...fresh];
      fresh.clear();
      for (const f of all) f();
    }, { once: true });
    set = fresh;
  }
  const own = set;
  own.add(fn);
  return () => {
    own.delete(fn);
  };
}

/** Waits `ms`; resolves false at once instead when `signal` aborts first (true when the time is up). */
export function pauseUnless(signal: AbortSignal, ms: number): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const off = onAbort(signal, () => {
      clearTimeout(timer);
      resolve(false);
    });
    const timer = setTimeout(() => {
      off();
      resolve(true);
    }, ms);
  });
}
