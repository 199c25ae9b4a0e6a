/**
 * A campaign: one private stack, many scenarios. Scenarios without a global fault run a few at a
 * time (each has its own event); a scenario with a global fault (REST outage, worker kill, FLUSHALL,
 * Postgres restart) runs alone, so it cannot be blamed for another scenario's result or vice versa.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { scenarioSeed } from './random.ts';
import { runScenario, type ScenarioResult } from './run-scenario.ts';
import { generateScenario } from './scenario.ts';
import { scenarioLine, scenarioReport } from './report.ts';
import { startChaosStack, type ChaosStack } from './stack.ts';

export interface CampaignOptions {
  /** Scenario seeds are derived from this (ignored with `replay`). */
  seed: number;
  scenarios: number;
  /** Run exactly these scenario seeds instead. */
  replay: number[];
  /** Stop starting scenarios after this many seconds (null: run them all). */
  durationSeconds: number | null;
  /** Scenarios without a global fault run this many at once. */
  parallel: number;
  /** Worker processes (default 1; see startChaosStack). */
  workers?: number;
  settleTimeoutMs: number;
  logDir: string;
  /** Print each scenario's full log, not only failures'. */
  verbose: boolean;
  /** Where lines go (stdout in the CLI). */
  out: (line: string) => void;
  /** Stops starting scenarios (running ones finish). */
  signal?: AbortSignal;
}

export interface CampaignResult {
  results: ScenarioResult[];
  elapsedMs: number;
  setupMs: number;
}

/** Starts a private stack, runs the campaign on it, stops it. Never throws for a violation. */
export async function runCampaign(opts: CampaignOptions): Promise<CampaignResult> {
  const t0 = performance.now();
  const workers = opts.workers ?? 1;
  const stack = await startChaosStack({ logDir: opts.logDir, log: opts.out, workers });
  const setupMs = performance.now() - t0;
  opts.out(`stack ready in ${(setupMs / 1000).toFixed(1)} s: API ${stack.apiUrl}, ${workers} worker${workers > 1 ? 's' : ''}, simulator ${stack.sim.url}, private Redis and Postgres; logs in ${opts.logDir}`);
  try {
    return { ...(await runScenarios(stack, opts)), setupMs };
  } finally {
    await stack.close();
  }
}

/**
 * Runs the campaign's scenarios on a running stack: a few at a time, and those with a global fault
 * alone. Writes each failed scenario's full report to `<logDir>/seed-<seed>.txt`.
 */
export async function runScenarios(stack: ChaosStack, opts: CampaignOptions): Promise<{ results: ScenarioResult[]; elapsedMs: number }> {
  const tag = randomBytes(3).toString('hex').slice(0, 4);
  const results: ScenarioResult[] = [];
  const started = performance.now();
  const running = new Set<Promise<void>>();
  const total = opts.replay.length > 0 ? opts.replay.length : opts.scenarios;

  const run = async (index: number, seed: number) => {
    const spec = generateScenario(seed);
    let result: ScenarioResult;
    try {
      result = await runScenario(stack, spec, { tag: `${tag}${index.toString(36)}`, settleTimeoutMs: opts.settleTimeoutMs });
    } catch (error) {
      result = {
        seed, eventId: '', ok: false, durationMs: 0, settle: { settled: false, pending: [], ms: 0 }, outcome: 'not run to the end',
        violations: [{ invariant: 'campaign', message: `the scenario could not run: ${(error as Error).message}` }], log: [], trace: [], spec,
      };
    }
    results.push(result);
    opts.out(scenarioLine(index, result));
    if (!result.ok || opts.verbose) writeFileSync(join(opts.logDir, `seed-${seed}.txt`), scenarioReport(result, opts.logDir));
    if (opts.verbose) opts.out(scenarioReport(result, opts.logDir));
  };

  for (let i = 0; i < total; i++) {
    if (opts.signal?.aborted) break;
    if (opts.durationSeconds !== null && performance.now() - started > opts.durationSeconds * 1000) break;
    const seed = opts.replay.length > 0 ? opts.replay[i]! : scenarioSeed(opts.seed, i);
    if (generateScenario(seed).globalFaults.length > 0) {
      await Promise.all(running);
      await run(i, seed);
      continue;
    }
    while (running.size >= opts.parallel) await Promise.race(running);
    const p: Promise<void> = run(i, seed).finally(() => running.delete(p));
    running.add(p);
  }
  await Promise.all(running);
  return { results, elapsedMs: performance.now() - started };
}
