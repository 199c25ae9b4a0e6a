/**
 * The time dropgate decides by, taken from Redis (attack round 20B).
 *
 * Scripts take the time from their caller (ARGV), so the same script decides alike on any shard and
 * tests can move time. But the caller's time was its host's wall clock: an API process whose host ran
 * 40 s fast sold and ticketed an order 16 s before the sale opened, showed the waiting room's shuffle
 * seed while other processes still placed joins by it (whoever saw it could pick a buyer id that
 * lands first), and one 40 s slow approved holds that had already expired, which the worker released
 * at once and another buyer took. Nothing compared the clocks.
 *
 * Every API and worker process now keeps its offset from one Redis's clock (`TIME`, through a
 * one-key script so a Redis Cluster answers from the shard of that key, the same shard for every
 * process), measured at start and every `everyMs`, each time the best of a few round trips (the one
 * with the shortest round trip bounds the error by half of it). `now()` is the host's monotonic clock
 * plus that offset, so every process decides by the same clock to within a millisecond or so, whatever
 * its host's wall clock says or does. A measurement that fails keeps the last offset; a process that
 * has not measured for a minute is not `synced` (dropgate_clock_synced 0, the DropgateClockOff alert),
 * and an API that never measured is not ready.
 */
import type { Clock } from '@dropgate/domain';
import type { RedisClient } from './connection.ts';

/** The key (never written) whose slot names the Redis every process of a deployment takes the time from. */
export function clockKey(queuePrefix: string): string {
  return `${queuePrefix}:clock`;
}

/** Redis's TIME, flagged as writing nothing: Redis runs it while it refuses writes (out of memory, a replica). */
const TIME_SCRIPT = "#!lua flags=no-writes\nreturn redis.call('TIME')";

/** Round trips per measurement; the shortest one is kept. */
const SAMPLES = 5;
/**
 * A round trip longer than this says too little (the offset's error is up to half of it: a Redis
 * paused for seconds would shift every decision by as much), and is not used: the last offset stays.
 */
export const CLOCK_MAX_ROUND_TRIP_MS = 100;

export interface RedisClockOptions {
  /** A key whose slot names the Redis (or Cluster shard) every process asks. Never written. */
  key: string;
  /** How often the offset is measured again (ms). Default 10 s. */
  everyMs?: number;
  /** Called after each attempt to measure, whether it succeeded or not (metrics: read `offsetMs`, `synced`). */
  onResult?: (clock: RedisClock) => void;
  /**
   * The host's clock (epoch ms). Default: the monotonic clock from the process's start
   * (`performance.timeOrigin + performance.now()`), which a step of the host's wall clock does not
   * move: a step of Date.now between two measurements moved every decision by as much for up to 10 s
   * (attack round 21B). Tests give one that is off.
   */
  hostNow?: () => number;
}

/** A measurement older than this leaves the clock not `synced` (six missed measurements at the default pace). */
export const CLOCK_SYNC_MAX_AGE_MS = 60_000;

export class RedisClock implements Clock {
  readonly #redis: RedisClient;
  readonly #key: string;
  readonly #everyMs: number;
  readonly #onResult: RedisClockOptions['onResult'];
  readonly #hostNow: () => number;
  #offsetMs = 0;
  /** When the offset was last measured (host clock, ms); null before the first measurement. */
  #measuredAt: number | null = null;
  #timer: NodeJS.Timeout | null = null;

  constructor(redis: RedisClient, opts: RedisClockOptions) {
    this.#redis = redis;
    this.#key = opts.key;
    this.#everyMs = opts.everyMs ?? 10_000;
    this.#onResult = opts.onResult;
    this.#hostNow = opts.hostNow ?? (() => performance.timeOrigin + performance.now());
  }

  now(): number {
    return Math.round(this.#hostNow() + this.#offsetMs);
  }

  /** Redis's clock minus this host's (ms), as last measured; 0 before the first measurement. */
  get offsetMs(): number {
    return this.#offsetMs;
  }

  /**
   * Redis's clock minus the host's wall clock now (ms): what NTP and V2's signature check read, which
   * the decisions do not (they read the monotonic clock plus `offsetMs`).
   */
  wallOffsetMs(): number {
    return this.now() - Date.now();
  }

  /** Whether the offset was ever measured (until then the process decides by its host's clock alone). */
  get everMeasured(): boolean {
    return this.#measuredAt !== null;
  }

  /** Whether the offset was measured within CLOCK_SYNC_MAX_AGE_MS. */
  get synced(): boolean {
    return this.#measuredAt !== null && this.#hostNow() - this.#measuredAt <= CLOCK_SYNC_MAX_AGE_MS;
  }

  /**
   * Measures the offset now (the best of a few round trips) and keeps it. @returns the offset and the
   * round trip it came from, or null when Redis did not answer or answered no round trip within
   * CLOCK_MAX_ROUND_TRIP_MS (the last offset is kept).
   */
  async measure(): Promise<{ offsetMs: number; roundTripMs: number } | null> {
    const m = await this.#measure();
    try {
      this.#onResult?.(this);
    } catch {
      // metrics never stop the clock
    }
    return m;
  }

  async #measure(): Promise<{ offsetMs: number; roundTripMs: number } | null> {
    let best: { offsetMs: number; roundTripMs: number } | null = null;
    for (let i = 0; i < SAMPLES; i++) {
      let sent: number;
      let answer: unknown;
      try {
        sent = this.#hostNow();
        answer = await this.#redis.eval(TIME_SCRIPT, 1, this.#key);
      } catch {
        return best === null ? null : this.#keep(best);
      }
      const received = this.#hostNow();
      const [seconds, micros] = (answer as [string | number, string | number]).map(Number) as [number, number];
      // A round trip below 0 is a host clock stepped back meanwhile (attack round 21B took half the step).
      if (!Number.isFinite(seconds) || !Number.isFinite(micros) || received < sent || received - sent > CLOCK_MAX_ROUND_TRIP_MS) continue;
      const sample = { offsetMs: seconds * 1000 + micros / 1000 - (sent + received) / 2, roundTripMs: received - sent };
      if (best === null || sample.roundTripMs < best.roundTripMs) best = sample;
    }
    return best === null ? null : this.#keep(best);
  }

  #keep(m: { offsetMs: number; roundTripMs: number }): { offsetMs: number; roundTripMs: number } {
    this.#offsetMs = m.offsetMs;
    this.#measuredAt = this.#hostNow();
    return m;
  }

  /** Measures once (never throws), then again every `everyMs` until `stop`. */
  async start(): Promise<void> {
    await this.measure().catch(() => null);
    if (this.#timer !== null) return;
    this.#timer = setInterval(() => void this.measure().catch(() => null), this.#everyMs);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
  }
}
