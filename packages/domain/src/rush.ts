/**
 * A fair rush (issue 11): the waiting room's settings, where holds are taken, and the bounds dropgate
 * chose where the issue left them open. Shared by the API, the workers, the record and the rehearsal.
 */

/** Where an event's hold is taken: at PortOne's confirm (the default) or when the order is created. */
export type HoldAt = 'confirm' | 'order';

/** The waiting room of an event (stored as JSON in `events.waiting_room`). */
export interface WaitingRoomSettings {
  /** `fixed`: admit_per_second always; `dynamic`: the pace follows the confirm latency and order throughput. */
  mode: 'fixed' | 'dynamic';
  /** Buyers admitted per second (fixed), or the starting and highest pace (dynamic). */
  admit_per_second: number;
  /** Most admitted buyers who have not ordered yet, at once. */
  max_active: number;
  /** How long an admission (and its admission token) lasts. */
  admission_ttl_seconds: number;
}

/**
 * How many times a live reservation can be extended with POST /orders/:merchant_uid/extend. Each
 * extension renews it for `reservation_ttl_seconds` from now, so a reservation lives at most
 * (1 + MAX_RESERVATION_EXTENSIONS) × its TTL before a payment starts (pretix: up to 11×; seats.io caps
 * a hold at 2 h; the TTL itself is at most 1 h, so a reservation never exceeds 4 h).
 */
export const MAX_RESERVATION_EXTENSIONS = 3;

/**
 * The remaining-places bound of admissions: at most this many buyers admitted and not yet ordered per
 * place still available. 1: every admitted buyer can find at least one free place when they order
 * (with one ticket per order), so admitted buyers are rarely told SOLD_OUT at selection; buyers who
 * abandon free their slot when their admission expires.
 */
export const ADMITTED_PER_AVAILABLE_PLACE = 1;

/** The fewest seconds between two polls of one queue place; faster polls are answered 429. */
export const QUEUE_POLL_INTERVAL_SECONDS = 1;

/**
 * When Redis has lost a waiting room, its buyers come back to their places as they poll (their tokens
 * carry them); from the first one back, admissions wait this long, so the buyers at the front are back
 * before anyone behind them is admitted.
 */
export const QUEUE_BACK_SECONDS = 10;

/**
 * The most places (seats and pool items) one waiting-list entry may want, whatever `max_per_buyer`
 * says: an entry is kept in Redis until the list is cleared, so its size times WAITLIST_MAX_ENTRIES
 * bounds what anyone can make Redis store (an entry of 100 seats and 100 items took 6.4 KB).
 */
export const WAITLIST_ENTRY_MAX_PLACES = 10;

/** Waiting-list steps a second each API process runs for one event's list, at most, after a burst of as many (polls beyond answer from the list as it is). */
export const WAITLIST_STEPS_PER_SECOND = 20;
