/**
 * The waiting room of an event in Redis (issue 11): one sorted set of waiting buyers, one of admitted
 * buyers who have not ordered yet, a hash of every admission, all under the event's hash tag. Every
 * operation is one script, O(log n) in the number of waiting buyers (plus the buyers it admits).
 */
import type { ScriptedRedis } from './scripts.ts';
import { eventKeys } from './keys.ts';
import { ScriptError } from './codes.ts';

export interface QueueSettings {
  opensAt: number;
  mode: 'fixed' | 'dynamic';
  admitPerSecond: number;
  maxActive: number;
  admissionTtlMs: number;
  admittedPerAvailablePlace: number;
  pollIntervalMs: number;
  confirmBudgetMs: number;
  /** Admissions are computed at most this often (ms), whoever polls. */
  stepMs: number;
  /** The shuffle seed: a buyer who joined before the opening is put back by it. */
  seed: string;
  /** How long admissions wait for the others once a lost room's first buyer is back (ms). */
  backMs: number;
}

/**
 * `place`: where the buyer stands, for their token to carry (`s`: the seeded shuffle; else the arrival,
 * in 1024ths of a millisecond, decimal).
 */
export type JoinResult = { result: 'joined' | 'rejoined'; rank: number; place: string } | { result: 'admitted' };

export interface QueueStatus {
  state: 'waiting' | 'paused' | 'admitted' | 'sold_out' | 'expired' | 'unknown' | 'rate_limited' | 'not_ready';
  /** 0-based place among waiting buyers (waiting, paused, sold_out). */
  rank: number;
  /** Admission expiry (ms) for admitted and expired. */
  admissionExpiresAt: number | null;
  waiting: number;
  /** Current admission pace, buyers per second. */
  pace: number;
  available: number;
  held: number;
}

/** What the waiting room holds (metrics, rehearsal reports). */
export interface QueueSnapshot {
  waiting: number;
  active: number;
  admitted: number;
  ordered: number;
  pace: number | null;
}

const STATES: Readonly<Record<number, QueueStatus['state']>> = {
  1: 'waiting', 2: 'admitted', 3: 'sold_out', 4: 'expired', 5: 'paused', [ScriptError.OrderNotFound]: 'unknown', [ScriptError.RateLimited]: 'rate_limited',
  [ScriptError.NotReady]: 'not_ready',
};

export class WaitingRoomStore {
  readonly redis: ScriptedRedis;

  constructor(redis: ScriptedRedis) {
    this.redis = redis;
  }

  async join(eventId: string, buyerId: string, nowMs: number, opensAt: number, seed: string): Promise<JoinResult> {
    const k = eventKeys(eventId);
    const [code, rank, place] = (await this.redis.joinQueue(k.queue, k.queueWaiting, k.queueAdmitted, buyerId, nowMs, opensAt, seed)) as [number, number, string];
    if (code === 2) return { result: 'admitted' };
    return { result: code === 1 ? 'joined' : 'rejoined', rank, place };
  }

  /** `place`: where the buyer's token says they stand (null: it carries none), to put them back there. */
  async poll(eventId: string, buyerId: string, place: string | null, nowMs: number, s: QueueSettings): Promise<QueueStatus> {
    const k = eventKeys(eventId);
    const [code, x, waiting, pace, available, held] = (await this.redis.pollQueue(
      k.queue, k.queueWaiting, k.queueActive, k.queueAdmitted, k.counts, k.queuePolls, k.meta, k.queueFronts,
      buyerId, nowMs, s.opensAt, s.mode, s.admitPerSecond, s.maxActive, s.admissionTtlMs, s.admittedPerAvailablePlace,
      s.pollIntervalMs, s.confirmBudgetMs, s.stepMs, place ?? '', s.seed, s.backMs,
    )) as number[];
    const state = STATES[code!];
    if (state === undefined) throw new Error(`pollQueue returned unknown code ${code}`);
    const admitted = state === 'admitted' || state === 'expired';
    return {
      state, rank: admitted ? 0 : x!, admissionExpiresAt: admitted ? x! : null, waiting: waiting!, pace: pace! / 1000, available: available!, held: held!,
    };
  }

  /** An admitted buyer ordered (hold_at "order"): their admission stops counting against the bounds. */
  async useAdmission(eventId: string, buyerId: string): Promise<boolean> {
    const k = eventKeys(eventId);
    return Number(await this.redis.useAdmission(k.queue, k.queueActive, buyerId)) === 1;
  }

  /**
   * The room's state may have been lost with the event's (a rebuild of an event Redis lost): admissions
   * wait until `untilMs` for the buyers who waited to come back (pollQueue), unless a wait was set
   * already in this room's life. Buyers who joined meanwhile stand behind them by their times.
   */
  async holdAdmissionsBack(eventId: string, untilMs: number): Promise<void> {
    await this.redis.hsetnx(eventKeys(eventId).queue, 'back', untilMs);
  }

  /**
   * How far each room has admitted: the place of the last buyer admitted (null: none yet, or the
   * room is not in Redis). The worker records it in Postgres, for a rebuild to put back.
   */
  async fronts(eventIds: readonly string[]): Promise<Map<string, number | null>> {
    const values = await Promise.all(eventIds.map((id) => this.redis.hget(eventKeys(id).queue, 'front')));
    return new Map(eventIds.map((id, i) => [id, values[i] === null || values[i] === undefined ? null : Number(values[i])]));
  }

  /**
   * Puts back how far a room Redis lost had admitted, as recorded: the front (unless the room is further
   * on) and the records of it (`marks`: the front, and when it was recorded), by which a buyer who comes
   * back is known to have been admitted by when. For a rebuild, before the event is loaded: until then
   * every poll is answered not_ready and admits nobody, so nothing moves the front meanwhile.
   */
  async restoreFront(eventId: string, marks: readonly { place: number; at: number }[]): Promise<void> {
    if (marks.length === 0) return;
    const k = eventKeys(eventId);
    const front = marks.reduce((most, m) => Math.max(most, m.place), -Infinity);
    for (let i = 0; i < marks.length; i += 1_000) {
      await this.redis.zadd(k.queueFronts, ...marks.slice(i, i + 1_000).flatMap((m) => [m.place, String(m.at)]));
    }
    const current = await this.redis.hget(k.queue, 'front');
    if (current !== null && current !== undefined && Number(current) >= front) return;
    await this.redis.hset(k.queue, 'front', front);
  }

  /** Records the confirm latency (ms) the dynamic pace follows. */
  async noteConfirmLatency(eventId: string, ms: number): Promise<void> {
    await this.redis.hset(eventKeys(eventId).queue, 'lat', Math.round(ms));
  }

  async snapshot(eventId: string): Promise<QueueSnapshot> {
    const k = eventKeys(eventId);
    const res = await this.redis.pipeline().zcard(k.queueWaiting).zcard(k.queueActive).hmget(k.queue, 'admitted', 'ordered', 'rate').exec();
    if (!res) throw new Error('pipeline aborted');
    for (const [err] of res) if (err) throw err;
    const [admitted, ordered, rate] = res[2]![1] as (string | null)[];
    return {
      waiting: Number(res[0]![1]), active: Number(res[1]![1]), admitted: Number(admitted ?? 0), ordered: Number(ordered ?? 0),
      pace: rate === null || rate === undefined ? null : Number(rate),
    };
  }
}
