import { describe, expect, it } from 'vitest';
import { byScenario, medianRound, ratioOf, sizeLine, spreadLine, type RoundRow } from '../src/rounds.ts';

const row = (scenario: string, rps: number, bareRps: number, p99: number): RoundRow => ({ scenario, run: { rps, p99 }, bare: { rps: bareRps } });

describe('bench rounds', () => {
  it('groups rows by scenario, scenarios in the order they first ran and rounds in order', () => {
    const rows = [row('orders', 1, 4, 10), row('race', 2, 4, 5), row('orders', 3, 4, 20), row('race', 1, 4, 7)];
    expect(byScenario(rows)).toEqual([[rows[0], rows[2]], [rows[1], rows[3]]]);
  });

  it('shows the round whose ratio to bare is the median, not the fastest run', () => {
    // Ratios 0.30, 0.20, 0.25: the median round is the third, though the first had the most requests a second.
    const rounds = [row('orders', 6_000, 20_000, 40), row('orders', 4_000, 20_000, 60), row('orders', 5_000, 20_000, 30)];
    expect(medianRound(rounds)).toBe(rounds[2]);
    expect(ratioOf(medianRound(rounds))).toBeCloseTo(0.25);
    // A round on a fast moment of the VM (bare faster too) is judged by its ratio, not its rate.
    const drift = [row('race', 10_000, 40_000, 10), row('race', 6_000, 20_000, 12), row('race', 7_000, 20_000, 11)];
    expect(medianRound(drift)).toBe(drift[1]);
  });

  it('takes the lower of the middle two of an even number of rounds, and refuses none', () => {
    const rounds = [row('a', 4, 10, 1), row('a', 1, 10, 1), row('a', 3, 10, 1), row('a', 2, 10, 1)];
    expect(medianRound(rounds)).toBe(rounds[3]);
    expect(medianRound([rounds[0]!])).toBe(rounds[0]);
    expect(() => medianRound([])).toThrow(/no rounds/);
  });

  it('prints the median and the range of the ratios and of the p99s', () => {
    const line = spreadLine([row('orders (seats and pool)', 6_000, 20_000, 41), row('orders (seats and pool)', 4_000, 20_000, 62), row('orders (seats and pool)', 5_000, 20_000, 8.5)]);
    expect(line).toBe('orders (seats and pool): 3 rounds, ratio to bare median 0.25 (0.20-0.30: 0.30, 0.20, 0.25), p99 median 41 ms (8.5-62)');
  });
});

describe('bench rounds: the event-size row', () => {
  it('pairs the large and the small event round by round and prints the medians of their ratios', () => {
    const small = [row('s', 10_000, 30_000, 20), row('s', 5_000, 15_000, 40), row('s', 8_000, 30_000, 30)];
    // p99 ratios 1.10, 0.90, 1.50 (median 1.10); throughput 0.90, 1.00, 1.25 (median 1.00).
    const large = [row('l', 9_000, 30_000, 22), row('l', 5_000, 15_000, 36), row('l', 10_000, 30_000, 45)];
    expect(sizeLine(small, large)).toBe('event size over 3 rounds: p99 on the large event over the small one, median 1.10x (1.10x, 0.90x, 1.50x); throughput median 1.00x (0.90x, 1.00x, 1.25x)');
  });
});
