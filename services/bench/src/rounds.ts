/**
 * `npm run bench -- --rounds N`: every scenario N times, each run bracketed by its own bare runs, and
 * the table shows for each scenario the round whose ratio to bare is the median, with the spread of
 * all rounds beside it. One run's ratio is one sample of a shared machine: on the same code and the
 * same VM, five rounds of the orders scenario in a row gave 0.26 to 0.30, the VM's speed (the bare
 * endpoint) drifting from 11,800 to 19,400 requests a second over the ten minutes (2026-12-03). A
 * change is worth believing when it moves the median past the spread, not one run past another.
 */

/** What a round of a scenario needs for this: its label, its rate and p99, and its bare bracket's rate. */
export interface RoundRow {
  scenario: string;
  run: { rps: number; p99: number };
  bare: { rps: number };
}

export const ratioOf = (r: RoundRow): number => r.run.rps / r.bare.rps;

/** The rows of each scenario across rounds, scenarios in the order they first ran, rounds in order. */
export function byScenario<T extends RoundRow>(rows: readonly T[]): T[][] {
  const groups = new Map<string, T[]>();
  for (const r of rows) {
    let g = groups.get(r.scenario);
    if (!g) groups.set(r.scenario, (g = []));
    g.push(r);
  }
  return [...groups.values()];
}

/** The round whose ratio to bare is the median (of an even number, the lower of the middle two). */
export function medianRound<T extends RoundRow>(rounds: readonly T[]): T {
  if (rounds.length === 0) throw new Error('medianRound: no rounds');
  const sorted = [...rounds].sort((a, b) => ratioOf(a) - ratioOf(b));
  return sorted[Math.floor((sorted.length - 1) / 2)]!;
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor((s.length - 1) / 2)]!;
};

const ms = (n: number) => (n < 10 ? n.toFixed(1) : n.toFixed(0));

/** One line for a scenario run in several rounds: its ratios and p99s, median and range. */
export function spreadLine(rounds: readonly RoundRow[]): string {
  const ratios = rounds.map(ratioOf);
  const p99s = rounds.map((r) => r.run.p99);
  return `${rounds[0]!.scenario}: ${rounds.length} rounds, ratio to bare median ${median(ratios).toFixed(2)} `
    + `(${Math.min(...ratios).toFixed(2)}-${Math.max(...ratios).toFixed(2)}: ${ratios.map((x) => x.toFixed(2)).join(', ')}), `
    + `p99 median ${ms(median(p99s))} ms (${ms(Math.min(...p99s))}-${ms(Math.max(...p99s))})`;
}

/**
 * The event-size row over several rounds: each round's p99 and throughput on the large event over the
 * small one (paired by round: both ran within minutes of each other), and their medians.
 */
export function sizeLine(small: readonly RoundRow[], large: readonly RoundRow[]): string {
  const n = Math.min(small.length, large.length);
  const p99 = Array.from({ length: n }, (_, i) => large[i]!.run.p99 / small[i]!.run.p99);
  const rps = Array.from({ length: n }, (_, i) => large[i]!.run.rps / small[i]!.run.rps);
  const list = (xs: number[]) => xs.map((x) => `${x.toFixed(2)}x`).join(', ');
  return `event size over ${n} rounds: p99 on the large event over the small one, median ${median(p99).toFixed(2)}x (${list(p99)}); `
    + `throughput median ${median(rps).toFixed(2)}x (${list(rps)})`;
}
