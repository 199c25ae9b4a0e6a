/**
 * PortOne's V1 confirm decision within the deadline budget.
 *
 * One EVALSHA decides (placeHold). A new hold is handed to the workers by the same script (an entry
 * in the event's hand-off stream, which the workers' relay turns into a BullMQ job with a deterministic
 * id), so the hold and its hand-off are durable together, in one round trip. Whatever cannot finish
 * inside the budget is refused, and any hold it took is undone: undoHold is sent on the same
 * connection right after placeHold, so Redis runs it after placeHold even when both were waiting
 * behind a paused server (the hand-off then finds the order no longer held and records nothing).
 */
import { eventIdOf, type RefusalCode } from '@dropgate/domain';
import type { HoldStore, PlaceResult } from '@dropgate/redis';

export type ConfirmDecision =
  | { approved: true; expiresAt: number; eventId: string }
  | { approved: false; code: RefusalCode; eventId: string | null };

export interface ConfirmDeps {
  store: HoldStore;
  /** Is the event known to exist? (in memory; no I/O) */
  isKnownEvent: (eventId: string) => boolean;
  /** Called when an event's Redis state is missing, so it gets rebuilt. */
  onEventNotLoaded: (eventId: string) => void;
  /** The time holds and sale windows are decided at (epoch ms). */
  now: () => number;
}

const TIMEOUT = Symbol('timeout');

/**
 * `promise`, or TIMEOUT once `ms` pass first. One promise and one timer a call; the timer's delay is
 * whole milliseconds (rounded down, so never late): Node keeps one timer list per distinct delay, and
 * fractional delays (the budget minus an elapsed time) gave nearly every confirm a list of its own.
 */
function within<T>(promise: Promise<T>, ms: number): Promise<T | typeof TIMEOUT> {
  const delay = Math.floor(ms);
  if (delay <= 0) return Promise.resolve(TIMEOUT);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, delay, TIMEOUT);
    promise.then(
      (value) => { clearTimeout(timer); resolve(value); },
      (error: unknown) => { clearTimeout(timer); reject(error); },
    );
  });
}

export interface ConfirmRequest {
  impUid: string;
  merchantUid: string;
  amount: number | null;
  /** ms left before the answer must leave (budget minus time already spent minus a safety margin). */
  remainingMs: () => number;
}

export async function decideConfirm(deps: ConfirmDeps, req: ConfirmRequest): Promise<ConfirmDecision> {
  const eventId = eventIdOf(req.merchantUid);
  if (eventId === null) return { approved: false, code: 'ORDER_NOT_FOUND', eventId: null };

  const placing = deps.store.placeHold(eventId, req.merchantUid, req.impUid, req.amount, deps.now());
  let result: PlaceResult | typeof TIMEOUT;
  try {
    result = await within(placing, req.remainingMs());
  } catch {
    // Redis unreachable (no offline queue: this fails at once) or the script failed.
    return { approved: false, code: 'NOT_READY', eventId };
  }
  if (result === TIMEOUT) {
    // Redis is slow or paused. Queue the undo behind the pending placeHold and refuse now.
    placing.catch(() => undefined);
    deps.store.undoHold(eventId, req.merchantUid, req.impUid).catch(() => undefined);
    return { approved: false, code: 'NOT_READY', eventId };
  }

  if (!result.approved) {
    if (result.code === 'EVENT_NOT_LOADED') {
      if (!deps.isKnownEvent(eventId)) return { approved: false, code: 'ORDER_NOT_FOUND', eventId: null };
      deps.onEventNotLoaded(eventId);
      return { approved: false, code: 'NOT_READY', eventId };
    }
    return { approved: false, code: result.code, eventId };
  }

  if (req.remainingMs() <= 0) {
    deps.store.undoHold(eventId, req.merchantUid, req.impUid).catch(() => undefined);
    return { approved: false, code: 'DEADLINE', eventId };
  }
  return { approved: true, expiresAt: result.expiresAt, eventId };
}
