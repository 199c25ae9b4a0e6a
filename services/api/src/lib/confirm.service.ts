/**
 * PortOne's V1 confirm decision within the deadline budget.
 *
 * One EVALSHA decides (placeHold). A new hold is handed to the workers by the same script (an entry
 * in the event's hand-off stream, which the workers' relay turns into a BullMQ job with a deterministic
 * id), so the hold and its hand-off are durable together, in one round trip. Whatever cannot finish
 * inside the budget is refused, and any hold it took is undone: undoHold is sent on the same
 * connection right after placeHold, so Redis runs it after placeHold even when both were waiting
 * behind a paused server (the hand-off then finds the order no longer held and records nothing). Both
 * carry the request's id, and undoHold takes back only what this request decided, never the approval
 * of another request that this one replayed.
 */
import { randomBytes } from 'node:crypto';
import { eventIdOf, type RefusalCode } from '@dropgate/domain';
import type { HoldStore, PlaceResult } from '@dropgate/redis';

export type ConfirmDecision =
  /** `replayed`: the answer another request decided (this request took nothing of its own). */
  | { approved: true; expiresAt: number; eventId: string; replayed: boolean }
  /** `late`: refused before Redis was asked, the budget spent before the request could be decided. */
  | { approved: false; code: RefusalCode; eventId: string | null; late?: true };

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

/** This process's confirm requests: a random prefix and a counter (placeHold and undoHold's request id). */
const REQUEST_ID_PREFIX = randomBytes(6).toString('base64url');
let requests = 0;
const nextRequestId = (): string => `${REQUEST_ID_PREFIX}${(++requests).toString(36)}`;

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

/**
 * Less than this left of the budget when the request is decided (its body arrived late: a slow network,
 * or a caller sending it slowly on purpose): refused DEADLINE at once, Redis not asked, so nothing is
 * held, undone or remembered for it (attack round 23A: such a request ran placeHold with no time to
 * wait for it, then its undo).
 */
export const MIN_DECISION_MS = 20;

export async function decideConfirm(deps: ConfirmDeps, req: ConfirmRequest): Promise<ConfirmDecision> {
  const eventId = eventIdOf(req.merchantUid);
  if (eventId === null) return { approved: false, code: 'ORDER_NOT_FOUND', eventId: null };
  if (req.remainingMs() < MIN_DECISION_MS) return { approved: false, code: 'DEADLINE', eventId, late: true };

  const rid = nextRequestId();
  const placing = deps.store.placeHold(eventId, req.merchantUid, req.impUid, req.amount, deps.now(), rid);
  let result: PlaceResult | typeof TIMEOUT;
  try {
    result = await within(placing, req.remainingMs());
  } catch {
    // Redis unreachable (no offline queue: this fails at once) or the script failed.
    return { approved: false, code: 'NOT_READY', eventId };
  }
  if (result === TIMEOUT) {
    // Redis is slow or paused. Queue the undo behind the pending placeHold on the same connection (Redis
    // runs it next, even if this process gives up on both or loses the connection: attack round 24) and
    // refuse now. It takes back only what this request decided: a replay of an approval sent in time
    // to another request stands (attack round 23A).
    placing.catch(() => undefined);
    deps.store.undoHold(eventId, req.merchantUid, req.impUid, rid).catch(() => undefined);
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
    // Decided too late to send. An approval this request took is taken back; a replayed one was sent
    // in time to the request that took it, and stands.
    if (!result.replayed) deps.store.undoHold(eventId, req.merchantUid, req.impUid, rid).catch(() => undefined);
    return { approved: false, code: 'DEADLINE', eventId };
  }
  return { approved: true, expiresAt: result.expiresAt, eventId, replayed: result.replayed };
}

/** What a confirm's answer hook reads of its decision (fastify request decorations, see portone.routes.ts). */
export interface DecisionNotes {
  confirmEvent: string;
  confirmLate: boolean;
  confirmDecided: boolean;
}

/**
 * Notes on the request what its decision tells the answer's hook (metrics, the dynamic waiting room's
 * latency): the event ('unknown' unless it exists), whether the body came in too late to decide, and
 * whether Redis decided it for an order of a known event.
 */
export function noteDecision(request: DecisionNotes, decision: ConfirmDecision, isKnownEvent: (eventId: string) => boolean): void {
  const known = decision.eventId !== null && isKnownEvent(decision.eventId);
  request.confirmEvent = known ? decision.eventId! : 'unknown';
  if (!decision.approved && decision.late) request.confirmLate = true;
  else if (known && (decision.approved || decision.code !== 'ORDER_NOT_FOUND')) request.confirmDecided = true;
}
