/**
 * The waiting room (issue 11), API side: joining, polling, and the admission check order creation
 * makes. Admissions advance lazily: every poll runs the one pollQueue script, which admits the buyers
 * due since the last step (at most once per ADMISSION_STEP_MS, whoever polls), so any number of API
 * processes share one pace and no timer is needed; a room nobody polls admits nobody, and nobody is
 * waiting for it to.
 */
import {
  ADMITTED_PER_AVAILABLE_PLACE, DomainError, QUEUE_BACK_SECONDS, QUEUE_POLL_INTERVAL_SECONDS, admissionProblem, admissionToken, placeToken, queueToken,
  queueTokenPlace, type WaitingRoomSettings,
} from '@dropgate/domain';
import type { HoldStore, QueueSettings, QueueStatus } from '@dropgate/redis';
import type { EventDef } from './catalog.ts';

/** Admissions are computed at most this often per event (ms). */
export const ADMISSION_STEP_MS = 100;

export interface QueueAnswer {
  state: 'waiting' | 'admitted' | 'sold_out' | 'expired';
  position: number;
  estimated_wait_seconds: number;
  admission_token?: string;
}

function room(event: EventDef): { settings: WaitingRoomSettings; secret: Buffer; seed: string } {
  if (!event.waitingRoom || !event.rushSecret || !event.queueSeed) {
    throw new DomainError('NO_WAITING_ROOM', `event ${event.id} has no waiting room`);
  }
  return { settings: event.waitingRoom, secret: event.rushSecret, seed: event.queueSeed };
}

function settingsOf(event: EventDef, s: WaitingRoomSettings, seed: string, confirmBudgetMs: number): QueueSettings {
  return {
    opensAt: event.saleOpensAt.getTime(),
    mode: s.mode,
    admitPerSecond: s.admit_per_second,
    maxActive: s.max_active,
    admissionTtlMs: s.admission_ttl_seconds * 1000,
    admittedPerAvailablePlace: ADMITTED_PER_AVAILABLE_PLACE,
    pollIntervalMs: QUEUE_POLL_INTERVAL_SECONDS * 1000,
    confirmBudgetMs,
    stepMs: ADMISSION_STEP_MS,
    seed,
    backMs: QUEUE_BACK_SECONDS * 1000,
  };
}

/** A place as Redis gives it (`s`, or an arrival in decimal) and as a token carries it (`s`, or base 36). */
const placeInToken = (place: string) => (place === 's' ? place : Number(place).toString(36));
const placeFromToken = (place: string) => (place === 's' ? place : String(parseInt(place, 36)));

function estimate(event: EventDef, nowMs: number, ahead: number, pace: number): number {
  const untilOpen = Math.max(0, event.saleOpensAt.getTime() - nowMs) / 1000;
  return Math.ceil(untilOpen + ahead / Math.max(pace, 0.001));
}

export async function joinQueue(store: HoldStore, event: EventDef, buyerId: string, nowMs: number): Promise<QueueAnswer & { queue_token: string }> {
  const { settings, secret, seed } = room(event);
  if (event.saleClosesAt && nowMs >= event.saleClosesAt.getTime()) throw new DomainError('SALE_CLOSED', 'sale is closed');
  const joined = await store.queues.join(event.id, buyerId, nowMs, event.saleOpensAt.getTime(), seed);
  // Admitted already: the buyer has no place for a token to carry.
  if (joined.result === 'admitted') return { queue_token: queueToken(secret, event.id, buyerId), state: 'admitted', position: 0, estimated_wait_seconds: 0 };
  return {
    queue_token: placeToken(secret, event.id, buyerId, placeInToken(joined.place)), state: 'waiting', position: joined.rank + 1,
    estimated_wait_seconds: estimate(event, nowMs, joined.rank + 1, settings.admit_per_second),
  };
}

export async function pollQueue(store: HoldStore, event: EventDef, token: string, nowMs: number, confirmBudgetMs: number): Promise<QueueAnswer> {
  const { settings, secret, seed } = room(event);
  const held = queueTokenPlace(secret, event.id, token);
  if (held === null) throw new DomainError('TOKEN_INVALID', 'no place in this queue matches this token');
  // After the close there is nothing left to wait for (and an archived event's room is gone from Redis).
  if (event.saleClosesAt && nowMs >= event.saleClosesAt.getTime()) throw new DomainError('SALE_CLOSED', 'sale is closed');
  const buyerId = held.buyer;
  const place = held.place === null ? null : placeFromToken(held.place);
  const s: QueueStatus = await store.queues.poll(event.id, buyerId, place, nowMs, settingsOf(event, settings, seed, confirmBudgetMs));
  switch (s.state) {
    case 'not_ready':
      // Redis lost the event (or is loading it again: the worker's guard does within seconds): its
      // counts are not there, and telling the room "sold out" would send everyone away.
      throw new DomainError('NOT_READY', 'the event is being loaded; poll again shortly');
    case 'rate_limited':
      throw new DomainError('RATE_LIMITED', `poll at most once every ${QUEUE_POLL_INTERVAL_SECONDS} s`, { retry_after_seconds: QUEUE_POLL_INTERVAL_SECONDS });
    case 'unknown':
      throw new DomainError('TOKEN_INVALID', 'no place in this queue matches this token');
    case 'admitted':
      return {
        state: 'admitted', position: 0, estimated_wait_seconds: 0,
        admission_token: admissionToken(secret, event.id, buyerId, s.admissionExpiresAt!),
      };
    case 'expired':
      return { state: 'expired', position: 0, estimated_wait_seconds: 0 };
    case 'sold_out':
      return { state: 'sold_out', position: s.rank + 1, estimated_wait_seconds: 0 };
    case 'waiting':
    case 'paused':
      // Paused: nothing is available now; places come back as holds end, so the pace estimate stays.
      return { state: 'waiting', position: s.rank + 1, estimated_wait_seconds: estimate(event, nowMs, s.rank + 1, s.pace) };
  }
}

/** Order creation on an event with a waiting room: the buyer's admission token must be good now. */
export function checkAdmission(event: EventDef, buyerId: string, token: string | undefined, nowMs: number): void {
  if (!event.waitingRoom) return;
  if (token === undefined) throw new DomainError('ADMISSION_REQUIRED', 'this event has a waiting room: join the queue and order with its admission_token');
  const problem = admissionProblem(event.rushSecret!, event.id, buyerId, token, nowMs);
  if (problem !== null) throw new DomainError('ADMISSION_INVALID', problem);
}
