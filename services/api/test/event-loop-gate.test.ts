/**
 * Load shedding by event-loop delay (EventLoopGate, under-pressure's health check in the API): the
 * mean delay of node's monitor in each window, less its resolution, against MAX_EVENT_LOOP_DELAY_MS.
 * The delay of the API's own start-up does not count: a full test run once saw the first request
 * after a start shed as OVERLOADED, the schemas' compilation having held the loop on a busy machine.
 * The gate is given the samples here: node's monitor records a held loop or not depending on the
 * loop phase that held it, which made a test that holds the loop itself pass or fail by chance.
 */
import { describe, expect, it } from 'vitest';
import { EventLoopGate } from '../src/lib/event-loop-gate.ts';
import { reserveMs, safetyMarginMs } from '../src/routes/portone.routes.ts';

/** Samples as node's monitor keeps them (nanoseconds), set by the test. */
class Samples {
  values: number[] = [];
  get count() { return this.values.length; }
  get mean() { return this.values.reduce((a, b) => a + b, 0) / Math.max(1, this.values.length); }
  get max() { return this.values.reduce((a, b) => Math.max(a, b), 0); }
  reset() { this.values = []; }
  disable() { return true; }
}
const ms = (n: number) => n * 1e6;

describe('EventLoopGate', () => {
  it('does not count the delay before open() (start-up), and counts it after, one window at a time', () => {
    const samples = new Samples();
    const gate = new EventLoopGate(100, samples);
    samples.values = [ms(600), ms(10)];
    expect(gate.keepsUp()).toBe(true);
    expect(samples.count).toBe(0); // each look starts a new window
    samples.values = [ms(600)];
    gate.open();
    expect(samples.count).toBe(0); // what came before open() is forgotten
    expect(gate.keepsUp()).toBe(true);
    samples.values = [ms(600), ms(10), ms(10)];
    expect(gate.keepsUp()).toBe(false);
    samples.values = [ms(10), ms(11), ms(12)];
    expect(gate.keepsUp()).toBe(true);
    // The mean less the monitor's 10 ms resolution, against the limit.
    samples.values = [ms(110)];
    expect(gate.keepsUp()).toBe(true);
    samples.values = [ms(111)];
    expect(gate.keepsUp()).toBe(false);
  });

  it('remembers the longest hold of the loop over the last ten looks (about a second), from open() on', () => {
    const samples = new Samples();
    const gate = new EventLoopGate(100, samples);
    samples.values = [ms(500)];
    gate.keepsUp();
    expect(gate.recentLagMs()).toBe(0); // start-up does not count
    gate.open();
    samples.values = [ms(10), ms(70), ms(12)];
    gate.keepsUp();
    expect(gate.recentLagMs()).toBe(60); // the longest delay less the monitor's 10 ms resolution
    for (let i = 0; i < 9; i++) {
      samples.values = [ms(10), ms(25)];
      gate.keepsUp();
      expect(gate.recentLagMs()).toBe(60);
    }
    samples.values = [ms(10)];
    gate.keepsUp(); // the 60 ms window is now eleven looks old
    expect(gate.recentLagMs()).toBe(15);
    for (let i = 0; i < 10; i++) {
      samples.values = [];
      gate.keepsUp();
    }
    expect(gate.recentLagMs()).toBe(0);
  });
});

describe('the confirm\'s reserve', () => {
  it('is the fixed margin plus the loop\'s recent lag, at most a quarter of the budget more', () => {
    expect(safetyMarginMs(400)).toBe(25);
    expect(safetyMarginMs(3_000)).toBe(60);
    expect(reserveMs(400, 0)).toBe(25);
    expect(reserveMs(400, 42.2)).toBe(25 + 43);
    expect(reserveMs(400, 5_000)).toBe(25 + 100);
    expect(reserveMs(3_000, 120)).toBe(60 + 120);
    expect(reserveMs(3_000, -3)).toBe(60);
  });
});
