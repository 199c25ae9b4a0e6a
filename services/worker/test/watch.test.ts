/**
 * The late-payment watch's schedule: LATE_PAYMENT_WATCH_SECONDS is how long a payment is watched.
 * Each check is scheduled when the one before it found nothing, so the delays must add up to the
 * setting (they once were the check times themselves, and the watch ran almost twice as long).
 */
import { describe, expect, it } from 'vitest';
import { WATCH_CHECKS, watchCheckAtMs, watchDelayMs } from '../src/settlement/watch.ts';

const checks = Array.from({ length: WATCH_CHECKS }, (_, i) => i + 1);

describe('the late-payment watch', () => {
  it('asks at 1/16, 1/8, 1/4, 1/2 and all of the setting, and ends there', () => {
    for (const seconds of [1, 8, 16, 1800]) {
      let at = 0;
      const times = checks.map((c) => (at += watchDelayMs(c, seconds)));
      const w = seconds * 1000;
      expect(times).toEqual([w / 16, w / 8, w / 4, w / 2, w].map(Math.round));
      expect(times.at(-1)).toBe(w);
      expect(checks.map((c) => watchCheckAtMs(c, seconds))).toEqual([w / 16, w / 8, w / 4, w / 2, w]);
    }
  });

  it('never schedules two checks at once', () => {
    for (const seconds of [1, 8, 1800]) for (const c of checks) expect(watchDelayMs(c, seconds)).toBeGreaterThan(0);
  });
});
