/**
 * A drop, start to finish: open the stack, create a fresh event, let the buyers loose, wait until every
 * hold has ended, check the invariants, and put the numbers together. `main.ts` wraps this in a CLI;
 * tests call it directly.
 */
import { randomBytes } from 'node:crypto';
import type { Ledger } from '@dropgate/portone-sim';
import { forkBuyerProcesses, type BuyerProcesses } from './buyer-processes.ts';
import { REORDER_MAX_HOLD_MS, emptyBuyerLog, runBuyers, type BuyerLog } from './buyers.ts';
import { INVARIANT_NAMES, checkInvariants, ledgerOf, type InvariantInputs, type InvariantReport } from '@dropgate/invariants';
import { stamp, type DropOptions } from './options.ts';
import type { ProgressState } from './progress.ts';
import { readInventory, startSampler } from './sampler.ts';
import { waitSettled, type SettleStatus } from './settle.ts';
import { summarize } from './stats.ts';
import { buildSummary, latencySeries, queueSeries, type DropSeries, type DropSummary } from './summary.ts';
import { openTarget, type DropTarget, type TargetOptions } from './target.ts';
import { buildVenue, eventBody } from './venue.ts';
import { cpuUsed, sampleCpu, type CpuSources } from './cpu.ts';
import { HoldStore, eventKeys } from '@dropgate/redis';

export interface RunContext {
  /** What `loadConfig` reads. Default process.env (only the CLI passes it; tests pass their own). */
  env: Record<string, string | undefined>;
  /** In-process: exactly this database (tests); otherwise DATABASE_URL's server with `--database`. */
  databaseUrl?: string;
  /** In-process: drop and recreate the database first (the CLI does). */
  freshDatabase?: boolean;
  onProgress?: (state: ProgressState) => void;
  /** Leave the stack running and return it (tests that look further). The caller closes it. */
  keepOpen?: boolean;
  /**
   * Run against this already opened stack (several drops on one stack, as several events on one
   * dropgate); its owner closes it. `apiUrl`, `simUrl` and the database options are then ignored.
   */
  target?: DropTarget;
  logLevel?: TargetOptions['logLevel'];
}

export interface DropResult {
  summary: DropSummary;
  series: DropSeries;
  invariants: InvariantReport;
  /** Present with `keepOpen`: the running stack and what the invariant checks read. */
  open?: { target: DropTarget; inputs: InvariantInputs<Ledger> };
  eventId: string;
}

export class DropSetupError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DropSetupError';
  }
}

function newEventId(now: Date): string {
  return `drop-${stamp(now)}-${randomBytes(2).toString('hex')}`;
}

/** p99 and rate of the confirms answered in the last `windowMs`. */
function recentConfirms(log: BuyerLog, nowMs: number, windowMs = 2_000): { perSecond: number; p99: number | null } {
  const latencies: number[] = [];
  for (let i = log.windows.length - 1; i >= 0; i--) {
    const w = log.windows[i]!;
    if (w.t < nowMs - windowMs) break;
    if (w.latencyMs !== null) latencies.push(w.latencyMs);
  }
  const span = Math.min(windowMs, Math.max(250, nowMs));
  return { perSecond: (latencies.length * 1000) / span, p99: latencies.length ? summarize(latencies).p99 : null };
}

/**
 * Creates the event. A 5xx (Redis or Postgres hiccup) is retried; a 409 after a failed attempt means
 * the first one got as far as Postgres, and the worker loads the event into Redis: wait for that.
 */
async function createEvent(target: DropTarget, eventId: string, body: unknown): Promise<void> {
  let failed = '';
  for (let attempt = 1; attempt <= 4; attempt++) {
    const res = await fetch(`${target.apiUrl}/admin/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${target.adminToken}` },
      body: JSON.stringify(body),
    });
    const text = await res.text();
    if (res.status === 201) return;
    if (res.status === 409 && failed !== '') break;
    if (res.status < 500) throw new DropSetupError(`POST /admin/events answered ${res.status}: ${text.slice(0, 300)}`);
    failed = `POST /admin/events answered ${res.status}: ${text.slice(0, 300)}`;
    await new Promise((r) => setTimeout(r, 500 * attempt));
  }
  const deadline = performance.now() + 15_000;
  while (performance.now() < deadline) {
    if (await readInventory(target.apiUrl, eventId)) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new DropSetupError(failed || `event ${eventId} never became available`);
}

/**
 * `--kill-primary-at`: SIGKILLs the primary serving the event `atMs` into the drop, then waits until
 * its replica has taken over (every slot served, cluster_state:ok) and the guard has rebuilt the event
 * from Postgres (its state stamped by the new primary). @returns what happened, for the report.
 */
async function scheduleFailover(target: DropTarget, eventId: string, atMs: number): Promise<string> {
  const cluster = target.cluster;
  if (!cluster) throw new DropSetupError('--kill-primary-at needs the drop\'s own cluster: --cluster without REDIS_CLUSTER_NODES');
  await new Promise((r) => setTimeout(r, atMs));
  const store = new HoldStore(target.redis);
  const primary = await cluster.primaryOf(eventKeys(eventId).meta);
  const killedAt = performance.now();
  await cluster.kill(primary);
  await cluster.waitHealthy(60_000);
  const tookOver = performance.now() - killedAt;
  const deadline = performance.now() + 60_000;
  while ((await store.stampState(eventId).catch(() => 'missing')) !== 'whole') {
    if (performance.now() > deadline) throw new DropSetupError(`event ${eventId} was not rebuilt within 60 s of the failover`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const whole = performance.now() - killedAt;
  return `primary ${primary} SIGKILLed at ${(atMs / 1000).toFixed(1)} s: replica took over in ${(tookOver / 1000).toFixed(1)} s, event whole again (rebuilt from Postgres) ${(whole / 1000).toFixed(1)} s after the kill`;
}

/** Runs one drop. @throws DropSetupError (or ConfigError) when the stack cannot be set up. */
export async function runDrop(options: DropOptions, run: RunContext): Promise<DropResult> {
  const owned = run.target === undefined;
  // --buyer-tokens: the stack requires signed buyers; a secret is made for the drop's own stack unless
  // the environment has one (a running API's, with --api-url, must come from there).
  let env = run.env;
  if (options.buyerTokens && !env['BUYER_TOKEN_SECRET']) {
    if (!owned || options.apiUrl !== null) throw new DropSetupError('--buyer-tokens against a running stack needs its BUYER_TOKEN_SECRET in the environment');
    env = { ...env, BUYER_TOKEN_SECRET: randomBytes(32).toString('hex') };
  }
  // Buyers sign whenever the stack wants signed buyers (the environment's secret), as a storefront must.
  const buyerSecret = env['BUYER_TOKEN_SECRET']?.split(',').map((s) => s.trim()).find(Boolean);
  let target: DropTarget;
  try {
    target = run.target ?? await openTarget({
      env,
      apiUrl: options.apiUrl,
      simUrl: options.simUrl,
      budgetMs: options.budgetMs,
      database: options.database,
      ...(run.databaseUrl !== undefined ? { databaseUrl: run.databaseUrl } : {}),
      freshDatabase: run.freshDatabase ?? false,
      cluster: options.cluster,
      simProcess: options.simProcess,
      stack: options.stackProcess ? { apiProcesses: options.apiProcesses, workerProcesses: options.workerProcesses } : null,
      ...(run.logLevel !== undefined ? { logLevel: run.logLevel } : {}),
    });
  } catch (error) {
    if ((error as Error).name === 'ConfigError') throw error;
    throw new DropSetupError(`could not start the drop's stack: ${(error as Error).message}`, { cause: error });
  }
  const startedAt = new Date();
  const eventId = options.eventId ?? newEventId(startedAt);
  let restoreFaults: (() => Promise<void>) | null = null;
  let keep = false;
  let buyerProcesses: BuyerProcesses | null = null;
  try {
    const venue = buildVenue(options.seats, options.pool);
    if (options.restLatencyMs > 0 || options.restFailureRate > 0) {
      // REST faults are the simulator's global ones: set them for the drop, put the old ones back after.
      const before = await target.sim.getFaults();
      await target.sim.setFaults({ ...before, rest_latency_ms: options.restLatencyMs, rest_failure_rate: options.restFailureRate });
      restoreFaults = () => target.sim.setFaults(before);
    }
    const closesAt = new Date(Date.now() + 3_600_000 + options.rampSeconds * 1000);
    await createEvent(target, eventId, eventBody(venue, { id: eventId, holdTtl: options.holdTtl, maxPerBuyer: options.maxPerOrder, closesAt, rush: options }));

    // Forked and listening before the clock starts: their start-up is not buying time.
    if (options.buyerProcesses > 1) buyerProcesses = await forkBuyerProcesses(Math.min(options.buyerProcesses, options.buyers));
    const log = emptyBuyerLog();
    const cpuSources: CpuSources = { redis: target.redis, ...target.pids };
    const cpuAtStart = await sampleCpu(cpuSources).catch(() => null);
    const t0 = performance.now();
    const wallStart = Date.now();
    let phase: ProgressState['phase'] = 'buying';
    let pending: string[] = [];
    const emit = (inv: { available: number; held: number; sold: number }) => {
      if (!run.onProgress) return;
      const now = performance.now() - t0;
      const recent = recentConfirms(log, now);
      run.onProgress({
        phase, elapsedMs: now, buyers: options.buyers, buyersDone: log.buyersDone, capacity: venue.capacity,
        sold: inv.sold, held: inv.held, available: inv.available, confirmsPerSecond: recent.perSecond, p99Ms: recent.p99, pending,
      });
    };
    const sampler = startSampler(target.apiUrl, eventId, t0, 250, emit);
    const failover = options.killPrimaryAt === null ? null : scheduleFailover(target, eventId, options.killPrimaryAt * 1000);
    // Handled where it is awaited, after the buyers; this only keeps an early failure from being unhandled meanwhile.
    failover?.catch(() => undefined);

    const buyers = { apiUrl: target.apiUrl, simUrl: target.sim.url, eventId, venue, options, t0, log, ...(buyerSecret !== undefined ? { buyerSecret } : {}) };
    await (buyerProcesses ? buyerProcesses.run(buyers) : runBuyers(buyers));
    await buyerProcesses?.close();
    // The kill happens even if the buyers were done sooner; the replica must have taken over and the
    // guard rebuilt the event before the drop can come to rest.
    const failed = failover ? await failover : null;
    const buyingDone = performance.now() - t0;
    const lastPaymentAt = log.lastWindowAt;

    phase = 'settling';
    // What the simulator may still do after the last buyer: turn a payment paid, then send its webhook
    // (delayed, or held back for reordering). Nothing shows it yet, so the drop is not at rest before.
    const tail = (options.failedThenPaid > 0 ? options.failedThenPaidMs : 0) + options.webhookDelayMs + (options.webhookReorder > 0 ? REORDER_MAX_HOLD_MS : 0);
    const notBefore = t0 + lastPaymentAt + (tail > 0 ? tail + 500 : 0);
    const settle: SettleStatus = await waitSettled(target, eventId, { timeoutMs: options.settleTimeout * 1000, notBefore }, (s) => {
      pending = s.pending;
      const latest = sampler.latest();
      if (latest) emit(latest);
    });
    const settledAt = performance.now() - t0;
    const cpuAtRest = await sampleCpu(cpuSources).catch(() => null);
    await sampler.stop();
    phase = 'checking';

    const ledger: Ledger = ledgerOf(await target.sim.ledger(), eventId);
    const inputs: InvariantInputs<Ledger> = { eventId, db: target.db, redis: target.redis, apiUrl: target.apiUrl, ledger };
    const invariants = await checkInvariants(inputs).catch((error: Error): InvariantReport => ({
      ok: false,
      results: ([1, 2, 3, 4] as const).map((id) => ({
        id, name: INVARIANT_NAMES[id], ok: false, summary: 'could not be checked', violations: [`the checks failed to run: ${error.message}`], violationCount: 1,
      })),
    }));
    const finalInventory = (await readInventory(target.apiUrl, eventId)) ?? sampler.latest() ?? { available: 0, held: 0, sold: 0 };
    const [orderRows, refundRows] = await Promise.all([
      target.db.selectFrom('orders').select(['status', (eb) => eb.fn.countAll<string>().as('n')]).where('event_id', '=', eventId).groupBy('status').execute(),
      target.db.selectFrom('refunds').select(['reason', 'amount']).where('event_id', '=', eventId).execute(),
    ]);
    const orders: Record<string, number> = {};
    for (const r of orderRows.sort((a, b) => Number(b.n) - Number(a.n))) orders[r.status] = Number(r.n);

    const summary = buildSummary({
      options,
      eventId,
      stack: failed ? `${target.description}; ${failed}` : target.description,
      startedAt,
      capacity: { seats: venue.seats, pool: venue.pool },
      log,
      ledger,
      finalInventory,
      orders,
      refunds: refundRows.map((r) => ({ reason: r.reason, amount: Number(r.amount) })),
      invariants: invariants.results,
      timing: {
        buyingMs: buyingDone,
        settleMs: Math.max(0, settledAt - lastPaymentAt),
        totalMs: performance.now() - t0,
        settled: settle.settled,
        pending: settle.pending,
      },
      // The buyer processes report their own CPU as they finish (they have exited by now).
      cpu: cpuAtStart && cpuAtRest ? cpuUsed(cpuAtStart, cpuAtRest, buyerProcesses?.cpuSeconds() ?? 0) : null,
      reportPath: null,
    });
    const latency = latencySeries(ledger, wallStart);
    const series: DropSeries = {
      queue: queueSeries(log.queue),
      inventory: sampler.samples,
      latency: latency.buckets,
      bucketMs: latency.width,
      budgetMs: options.budgetMs,
      lastPaymentAt,
      settledAt,
    };
    keep = run.keepOpen === true;
    return { summary, series, invariants, eventId, ...(keep ? { open: { target, inputs } } : {}) };
  } finally {
    await buyerProcesses?.close();
    if (restoreFaults) await restoreFaults().catch(() => undefined);
    if (owned && !keep) await target.close([eventId]);
  }
}
