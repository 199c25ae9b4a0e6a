/**
 * Small drops for tests: each one on its own database (testkit), its own queue prefix and event id, so
 * test files (and concurrent tests in a file) never share state.
 */
import { afterAll, beforeAll } from 'vitest';
import { IN_PROCESS_STACK_ENV, createTestDatabase, type TestDatabase } from '@dropgate/testkit';
import { DEFAULT_OPTIONS, openTarget, runDrop, type DropOptions, type DropResult, type DropSummary, type DropTarget } from '../src/index.ts';

const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** A few seconds of drop: enough buyers to sell out, short holds, small worker pools. */
export function smallOptions(overrides: Partial<DropOptions> = {}): DropOptions {
  return {
    ...DEFAULT_OPTIONS,
    seats: 60,
    pool: 30,
    buyers: 150,
    maxPerOrder: 3,
    concurrency: 30,
    holdTtl: 5,
    buyerDelayMs: 300,
    budgetMs: 3000,
    settleTimeout: 45,
    report: null,
    quiet: true,
    seed: 2027,
    eventId: null,
    ...overrides,
  };
}

/** The environment a test drop's stack reads (loadConfig): the test Redis, quiet, few connections. */
export const TEST_ENV: Record<string, string> = {
  REDIS_URL,
  LOG_LEVEL: 'silent',
  // Postgres allows 100 connections for every test file running in parallel: a stack here uses at
  // most 10 (API) + 9 (worker) + 3 (checks).
  WORKER_CONCURRENCY: '4',
  // Holds here last seconds, not minutes: sweep for overdue ones every second (the default, 5 s, is
  // as long as a test hold), so a hold ends about when it expires, as it would in a real drop.
  SWEEP_INTERVAL_MS: '1000',
  ...IN_PROCESS_STACK_ENV,
};

/** The invariants a drop broke, each with its first violations: `[]` when all of them hold. */
export function brokenInvariants(summary: DropSummary): string[] {
  return summary.invariants.filter((r) => !r.ok).map((r) => `${r.id}. ${r.name}: ${r.violations.slice(0, 5).join('; ')}`);
}

export interface TestDrop {
  result: DropResult;
  db: TestDatabase;
}

/** Runs a small drop on a database of its own; the database is dropped afterwards unless kept open. */
export async function smallDrop(label: string, overrides: Partial<DropOptions> = {}, opts: { keepOpen?: boolean } = {}): Promise<TestDrop> {
  const db = await createTestDatabase(label);
  try {
    const result = await runDrop(smallOptions(overrides), { env: TEST_ENV, databaseUrl: db.url, keepOpen: opts.keepOpen ?? false });
    if (!opts.keepOpen) await db.drop();
    return { result, db };
  } catch (error) {
    await db.drop().catch(() => undefined);
    throw error;
  }
}

export interface TestStack {
  target: DropTarget;
  db: TestDatabase;
  /** Event ids run on it, whose Redis keys go when it closes. */
  events: string[];
  drop(overrides?: Partial<DropOptions>): Promise<DropResult>;
  close(): Promise<void>;
}

/** One in-process stack (API, worker, simulator, database) for several drops, each its own event. */
export async function openTestStack(label: string, extraEnv: Record<string, string> = {}): Promise<TestStack> {
  const db = await createTestDatabase(label);
  const env = { ...TEST_ENV, ...extraEnv };
  const target = await openTarget({ env, apiUrl: null, simUrl: null, budgetMs: 3000, database: 'unused', databaseUrl: db.url, freshDatabase: false });
  const events: string[] = [];
  return {
    target,
    db,
    events,
    async drop(overrides = {}) {
      const result = await runDrop(smallOptions(overrides), { env, target });
      events.push(result.eventId);
      return result;
    },
    async close() {
      await target.close(events);
      await db.drop();
    },
  };
}

/**
 * The file's stacks, one per label (`{ name: label }`), opened before its tests and closed after them;
 * read them in tests (`stacks.name`), not at load time. Each stack runs inside the test's process: a
 * fault file keeps to a few drops per stack, since one process running eight drops on a shared
 * worker got too little of a busy machine's CPU to settle them in time.
 */
export function stacksForFile<K extends string>(labels: Record<K, string>): Record<K, TestStack> {
  const stacks = {} as Record<K, TestStack>;
  beforeAll(async () => {
    await Promise.all((Object.entries(labels) as [K, string][]).map(async ([name, label]) => { stacks[name] = await openTestStack(label); }));
  });
  afterAll(async () => {
    await Promise.all(Object.values<TestStack>(stacks).map((s) => s.close()));
  });
  return stacks;
}
