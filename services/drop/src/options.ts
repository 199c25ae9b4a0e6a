/**
 * `npm run drop -- [options]`: every option, its default and its check. Parsed with node:util's
 * parseArgs; an invalid value is a {@link UsageError} naming the option.
 */
import { parseArgs } from 'node:util';

export type Arrival = 'burst' | 'ramp';

/**
 * How buyers pay: PortOne V1 (confirm_url), V2 with the signed confirm webhook (confirmUrl), or V2
 * manual confirmation (the storefront posts the paymentToken to /portone/v2/manual-confirm).
 */
export type PortOneMode = 'v1' | 'v2' | 'v2-manual';
export const PORTONE_MODES: readonly PortOneMode[] = ['v1', 'v2', 'v2-manual'];

/** Everything a drop is made of. Shares are probabilities from 0 to 1. */
export interface DropOptions {
  /** Numbered seats (laid out as seat blocks of 20 rows × 50 seats per section). */
  seats: number;
  /** Capacity of one general-admission pool (0 = none). */
  pool: number;
  buyers: number;
  /** Tickets per order are 1..maxPerOrder; also the event's per-buyer limit. */
  maxPerOrder: number;
  /** Buyers in the payment window at the same time. */
  concurrency: number;
  arrival: Arrival;
  /** With `ramp`: buyers arrive evenly over this many seconds. */
  rampSeconds: number;
  /** Share of approved payments the PG declines. */
  failed: number;
  /** Share of approved payments the buyer abandons (the window is closed; nothing is sent). */
  abandoned: number;
  /** Share of buyers whose payment was declined who try again on the same order. */
  retryFailed: number;
  /** Orders a buyer tries when the chosen seats are sold out (1 = no second choice). */
  attempts: number;
  /** The buyer spends up to this long (uniformly random) in the payment window after the approval. */
  buyerDelayMs: number;
  /** Probability that a webhook is lost. */
  webhookLoss: number;
  /** Share of payments whose webhooks arrive twice. */
  webhookDuplicates: number;
  /** Webhooks are delayed by up to this long (uniformly random). */
  webhookDelayMs: number;
  /** Share of payments whose webhook is held back and delivered after the next one (or late). */
  webhookReorder: number;
  /** Share of payments whose webhook arrives before the buyer is back from the payment window. */
  webhookBeforeReturn: number;
  /** Share of paid payments the PG first reports failed, and turns paid `failedThenPaidMs` later. */
  failedThenPaid: number;
  failedThenPaidMs: number;
  /** Share of paid payments cancelled on PortOne's side (console) right after payment. */
  consoleCancel: number;
  /** Added latency of every PortOne REST call (the worker's view of PortOne). */
  restLatencyMs: number;
  /** Probability that a PortOne REST call answers 503. */
  restFailureRate: number;
  /** The event's hold TTL in seconds (5..3600; short, so abandoned holds expire quickly). */
  holdTtl: number;
  /** The confirm budget in ms (the API's CONFIRM_BUDGET_MS when it runs in-process). */
  budgetMs: number;
  /** Seconds to wait, after the last buyer, for every hold to end. */
  settleTimeout: number;
  /** Drive an already running API (and its worker) instead of starting one. */
  apiUrl: string | null;
  /** Drive an already running simulator instead of starting one. */
  simUrl: string | null;
  /** Database (on DATABASE_URL's server) of the in-process stack; recreated for every drop. */
  database: string;
  /** Where the HTML report goes; null = no report. */
  report: string | null;
  json: boolean;
  quiet: boolean;
  seed: number;
  /** Event id; default `drop-<date>-<time>-<random>`. */
  eventId: string | null;
  /** Which PortOne API and flow the buyers pay through. */
  portone: PortOneMode;
  /** A fair rush (issue 11): the event's waiting room mode, or none. */
  waitingRoom: 'fixed' | 'dynamic' | null;
  /** The waiting room's admit_per_second (the ceiling in dynamic mode). */
  admitPerSecond: number;
  /** The waiting room's max_active: admitted buyers who have not ordered yet. */
  maxActive: number;
  admissionTtl: number;
  /** Where the hold is taken: at the confirm (today) or at order creation (a reservation). */
  holdAt: 'confirm' | 'order';
  /** With --hold-at order: the reservation TTL in seconds. */
  reservationTtl: number;
  /** The event has a waiting list; buyers refused at selection join it (needs --hold-at order). */
  waitlist: boolean;
  /**
   * The storefront signs its buyers: the stack runs with BUYER_TOKEN_SECRET (the environment's, or one
   * made for the drop) and every order, queue join and waiting-list join carries the buyer's token.
   */
  buyerTokens: boolean;
  waitlistOfferTtl: number;
  /**
   * Run on Redis Cluster: the one REDIS_CLUSTER_NODES names, or else a private 3-primary, 3-replica
   * cluster the drop starts (redis-server and redis-cli on PATH) and stops.
   */
  cluster: boolean;
  /** With the drop's own cluster: SIGKILL the primary serving the event this many seconds into the drop. */
  killPrimaryAt: number | null;
  /**
   * Child processes the buyers are spread over (buyer `i` goes to process `i mod n`, each with its
   * share of `concurrency`); 1 runs them in this process.
   */
  buyerProcesses: number;
  /** Run the PortOne simulator in a child process of its own (`npm run sim`) instead of in this one. */
  simProcess: boolean;
  /**
   * Run the API and the worker through `npm start` (scripts/start.ts) in child processes, with
   * `apiProcesses` API and `workerProcesses` worker processes, instead of in this process.
   */
  stackProcess: boolean;
  apiProcesses: number;
  workerProcesses: number;
}

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** Defaults; `budgetMs` comes from CONFIRM_BUDGET_MS (3000) when not given. */
export const DEFAULT_OPTIONS: Readonly<Omit<DropOptions, 'report' | 'budgetMs' | 'seed' | 'eventId'>> = Object.freeze({
  seats: 2000,
  pool: 1000,
  buyers: 6000,
  maxPerOrder: 4,
  // A buyer process's share: unless --concurrency is given, the drop lets this many buyers into the
  // payment window at once per buyer process (parseDropArgs).
  concurrency: 200,
  arrival: 'burst',
  rampSeconds: 10,
  failed: 0.1,
  abandoned: 0.1,
  retryFailed: 0.5,
  attempts: 2,
  buyerDelayMs: 1000,
  webhookLoss: 0.05,
  webhookDuplicates: 0.1,
  webhookDelayMs: 0,
  webhookReorder: 0,
  webhookBeforeReturn: 0,
  failedThenPaid: 0,
  failedThenPaidMs: 1500,
  consoleCancel: 0,
  restLatencyMs: 0,
  restFailureRate: 0,
  holdTtl: 10,
  settleTimeout: 60,
  apiUrl: null,
  simUrl: null,
  database: 'dropgate_drop',
  json: false,
  quiet: false,
  portone: 'v1',
  waitingRoom: null,
  admitPerSecond: 100,
  maxActive: 200,
  admissionTtl: 30,
  holdAt: 'confirm',
  reservationTtl: 10,
  waitlist: false,
  buyerTokens: false,
  waitlistOfferTtl: 10,
  cluster: false,
  killPrimaryAt: null,
  buyerProcesses: 1,
  simProcess: false,
  stackProcess: false,
  apiProcesses: 1,
  workerProcesses: 1,
});

interface Spec {
  key: keyof DropOptions;
  kind: 'int' | 'share' | 'ms' | 'string' | 'url' | 'bool';
  min?: number;
  max?: number;
  help: string;
}

/** CLI flag → option, in the order `--help` lists them. */
const SPECS: Record<string, Spec> = {
  seats: { key: 'seats', kind: 'int', min: 0, max: 200_000, help: 'numbered seats' },
  pool: { key: 'pool', kind: 'int', min: 0, max: 1_000_000, help: 'general-admission pool capacity (0 = none)' },
  buyers: { key: 'buyers', kind: 'int', min: 1, max: 1_000_000, help: 'buyers' },
  'max-per-order': { key: 'maxPerOrder', kind: 'int', min: 1, max: 20, help: 'tickets per order are 1..N (also the per-buyer limit)' },
  concurrency: { key: 'concurrency', kind: 'int', min: 1, max: 5000, help: 'buyers in the payment window at once (all processes)' },
  arrival: { key: 'arrival', kind: 'string', help: 'burst (all at once) or ramp (evenly over --ramp-seconds)' },
  'ramp-seconds': { key: 'rampSeconds', kind: 'int', min: 1, max: 3600, help: 'with --arrival ramp: arrival period' },
  failed: { key: 'failed', kind: 'share', help: 'share of approved payments the PG declines' },
  abandoned: { key: 'abandoned', kind: 'share', help: 'share of approved payments abandoned by the buyer' },
  'retry-failed': { key: 'retryFailed', kind: 'share', help: 'share of declined buyers who pay again on the same order' },
  attempts: { key: 'attempts', kind: 'int', min: 1, max: 10, help: 'orders a buyer tries when the seats are sold out' },
  'buyer-delay-ms': { key: 'buyerDelayMs', kind: 'ms', help: 'buyer think time in the payment window, up to' },
  'webhook-loss': { key: 'webhookLoss', kind: 'share', help: 'probability a webhook is lost' },
  'webhook-duplicates': { key: 'webhookDuplicates', kind: 'share', help: 'share of payments whose webhooks arrive twice' },
  'webhook-delay-ms': { key: 'webhookDelayMs', kind: 'ms', help: 'webhooks delayed by up to' },
  'webhook-reorder': { key: 'webhookReorder', kind: 'share', help: 'share of payments whose webhooks arrive out of order' },
  'webhook-before-return': { key: 'webhookBeforeReturn', kind: 'share', help: 'share of payments whose webhook beats the buyer back' },
  'failed-then-paid': { key: 'failedThenPaid', kind: 'share', help: 'share of paid payments first reported failed' },
  'failed-then-paid-ms': { key: 'failedThenPaidMs', kind: 'ms', help: '...and turned paid this much later' },
  'console-cancel': { key: 'consoleCancel', kind: 'share', help: 'share of paid payments cancelled at PortOne right after' },
  'rest-latency-ms': { key: 'restLatencyMs', kind: 'ms', help: 'added latency of PortOne REST calls' },
  'rest-failure-rate': { key: 'restFailureRate', kind: 'share', help: 'probability a PortOne REST call answers 503' },
  'hold-ttl': { key: 'holdTtl', kind: 'int', min: 5, max: 3600, help: 'hold TTL in seconds' },
  'budget-ms': { key: 'budgetMs', kind: 'int', min: 100, max: 4900, help: 'confirm budget in ms (CONFIRM_BUDGET_MS)' },
  'settle-timeout': { key: 'settleTimeout', kind: 'int', min: 1, max: 3600, help: 'seconds to wait for every hold to end' },
  'api-url': { key: 'apiUrl', kind: 'url', help: 'drive this running API (needs ADMIN_TOKEN, DATABASE_URL, REDIS_URL)' },
  'sim-url': { key: 'simUrl', kind: 'url', help: 'drive this running simulator (the one the API\'s worker uses)' },
  database: { key: 'database', kind: 'string', help: 'database of the in-process stack (recreated each drop)' },
  report: { key: 'report', kind: 'string', help: 'HTML report path' },
  'no-report': { key: 'report', kind: 'bool', help: 'write no HTML report' },
  json: { key: 'json', kind: 'bool', help: 'print a JSON summary instead of the text report' },
  quiet: { key: 'quiet', kind: 'bool', help: 'no progress on stderr' },
  seed: { key: 'seed', kind: 'int', min: 0, max: 2 ** 31 - 1, help: 'random seed [random]' },
  'event-id': { key: 'eventId', kind: 'string', help: 'event id [drop-<date>-<time>-<random>]' },
  portone: { key: 'portone', kind: 'string', help: 'v1 (confirm_url), v2 (signed confirm webhook) or v2-manual (manual confirmation)' },
  'waiting-room': { key: 'waitingRoom', kind: 'string', help: 'a waiting room in front of the orders: fixed or dynamic pace (alone: fixed)' },
  'admit-per-second': { key: 'admitPerSecond', kind: 'int', min: 1, max: 10_000, help: 'waiting room: buyers admitted per second' },
  'max-active': { key: 'maxActive', kind: 'int', min: 1, max: 1_000_000, help: 'waiting room: admitted buyers not yet ordered, at most' },
  'admission-ttl': { key: 'admissionTtl', kind: 'int', min: 5, max: 3600, help: 'waiting room: seconds an admission lasts' },
  'hold-at': { key: 'holdAt', kind: 'string', help: 'confirm (hold at PortOne\'s confirm) or order (reserve at selection)' },
  'reservation-ttl': { key: 'reservationTtl', kind: 'int', min: 5, max: 3600, help: 'with --hold-at order: reservation TTL in seconds' },
  waitlist: { key: 'waitlist', kind: 'bool', help: 'a waiting list: buyers refused at selection join it (needs --hold-at order)' },
  'buyer-tokens': { key: 'buyerTokens', kind: 'bool', help: 'signed buyers: the stack requires buyer tokens (BUYER_TOKEN_SECRET, made for the drop if unset) and the buyers sign theirs' },
  'waitlist-offer-ttl': { key: 'waitlistOfferTtl', kind: 'int', min: 5, max: 3600, help: 'with --waitlist: seconds an offer is reserved' },
  cluster: { key: 'cluster', kind: 'bool', help: 'on Redis Cluster: REDIS_CLUSTER_NODES, else a private 3-primary, 3-replica cluster' },
  'kill-primary-at': { key: 'killPrimaryAt', kind: 'int', min: 0, max: 3600, help: 'with --cluster (its own): SIGKILL the event\'s primary this many seconds in' },
  'buyer-processes': { key: 'buyerProcesses', kind: 'int', min: 1, max: 64, help: 'child processes the buyers are spread over (1: in this process)' },
  'sim-process': { key: 'simProcess', kind: 'bool', help: 'the PortOne simulator in a child process of its own (npm run sim)' },
  'stack-process': { key: 'stackProcess', kind: 'bool', help: 'the API and the worker in child processes, through npm start (WORKER_NICE 0 unless set)' },
  'api-processes': { key: 'apiProcesses', kind: 'int', min: 1, max: 64, help: 'with --stack-process: API processes (API_PROCESSES)' },
  'worker-processes': { key: 'workerProcesses', kind: 'int', min: 1, max: 64, help: 'with --stack-process: worker processes (WORKER_PROCESSES)' },
  split: { key: 'stackProcess', kind: 'bool', help: 'shorthand: --buyer-processes 2 --sim-process --stack-process' },
};

function fmtDefault(flag: string, budgetDefault: number): string {
  if (flag === 'budget-ms') return String(budgetDefault);
  if (flag === 'report') return 'reports/drop-<timestamp>.html';
  if (flag === 'seed' || flag === 'event-id' || flag === 'no-report' || flag === 'split') return '';
  if (flag === 'concurrency') return `${DEFAULT_OPTIONS.concurrency} a buyer process`;
  const spec = SPECS[flag]!;
  const value = (DEFAULT_OPTIONS as Record<string, unknown>)[spec.key];
  if (value === null || value === false || value === undefined) return '';
  return String(value);
}

export function helpText(budgetDefault = 3000): string {
  const lines = [
    'npm run drop -- [options]',
    '',
    'A simulated ticket drop end to end: starts the API, the worker and the PortOne simulator (unless',
    '--api-url/--sim-url point at running ones), creates an event, lets the buyers loose through the',
    'simulator, waits until every hold has ended, prints a report, writes an HTML report, and checks the',
    'invariants across the API, Postgres, Redis and the simulator\'s ledger (exit 1 if one is broken).',
    'The buyers, the simulator and the stack can each run in processes of their own (--buyer-processes,',
    '--sim-process, --stack-process; --split for all three), so the drop measures dropgate, not its driver.',
    '',
    'Options (default in brackets):',
  ];
  for (const [flag, spec] of Object.entries(SPECS)) {
    const arg = spec.kind === 'bool' ? '' : spec.kind === 'share' ? ' <0..1>' : spec.kind === 'ms' ? ' <ms>' : spec.kind === 'int' ? ' <n>' : spec.kind === 'url' ? ' <url>' : ' <value>';
    const def = fmtDefault(flag, budgetDefault);
    lines.push(`  --${(flag + arg).padEnd(30)} ${spec.help}${def ? ` [${def}]` : ''}`);
  }
  lines.push(`  ${'--help'.padEnd(32)} this text`);
  lines.push('');
  lines.push('Environment: DATABASE_URL and REDIS_URL (the in-process stack uses DATABASE_URL\'s server with');
  lines.push('--database), CONFIRM_BUDGET_MS, and ADMIN_TOKEN with --api-url. A stack the drop starts takes the');
  lines.push('rest of dropgate\'s settings from the environment too, with WORKER_CONCURRENCY 256 unless set.');
  lines.push('Exit status: 0 all invariants hold, 1 an invariant is broken, 2 bad usage or the stack could not start.');
  return lines.join('\n');
}

export interface ParsedArgs {
  help: boolean;
  options: DropOptions;
}

/** A timestamp usable in file names and event ids: 20271120-2301 style (UTC). */
export function stamp(date: Date): string {
  const iso = date.toISOString();
  return `${iso.slice(0, 10).replace(/-/g, '')}-${iso.slice(11, 19).replace(/:/g, '')}`;
}

/**
 * Parses `argv` (without node and the script). `budgetDefault` is CONFIRM_BUDGET_MS.
 * @throws UsageError naming the offending option.
 */
export function parseDropArgs(argv: readonly string[], budgetDefault = 3000, now = new Date()): ParsedArgs {
  // `--waiting-room` alone means the fixed pace (its value is optional).
  argv = argv.flatMap((a, i) => (a === '--waiting-room' && (argv[i + 1] === undefined || argv[i + 1]!.startsWith('--')) ? [a, 'fixed'] : [a]));
  const parseOptions: Record<string, { type: 'string' | 'boolean' }> = { help: { type: 'boolean' } };
  for (const [flag, spec] of Object.entries(SPECS)) parseOptions[flag] = { type: spec.kind === 'bool' ? 'boolean' : 'string' };
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({ args: [...argv], options: parseOptions, strict: true, allowPositionals: false }) as { values: Record<string, string | boolean | undefined> });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const options: DropOptions = {
    ...DEFAULT_OPTIONS,
    budgetMs: budgetDefault,
    seed: Math.floor(Math.random() * 2 ** 31),
    eventId: null,
    report: `reports/drop-${stamp(now)}.html`,
  };
  const out = options as unknown as Record<string, unknown>;
  for (const [flag, spec] of Object.entries(SPECS)) {
    const raw = values[flag];
    if (raw === undefined) continue;
    if (flag === 'no-report') {
      if (raw === true) options.report = null;
      continue;
    }
    if (flag === 'split') {
      if (raw === true) {
        if (values['buyer-processes'] === undefined) options.buyerProcesses = 2;
        options.simProcess = true;
        options.stackProcess = true;
      }
      continue;
    }
    if (spec.kind === 'bool') {
      out[spec.key] = raw === true;
      continue;
    }
    const text = String(raw).trim();
    switch (spec.kind) {
      case 'int': {
        if (!/^\d+$/.test(text)) throw new UsageError(`--${flag} must be a whole number, got ${JSON.stringify(raw)}`);
        const n = Number(text);
        if (n < (spec.min ?? 0) || n > (spec.max ?? Number.MAX_SAFE_INTEGER)) {
          throw new UsageError(`--${flag} must be from ${spec.min ?? 0} to ${spec.max}, got ${n}`);
        }
        out[spec.key] = n;
        break;
      }
      case 'share': {
        const n = Number(text);
        if (text === '' || !Number.isFinite(n) || n < 0 || n > 1) throw new UsageError(`--${flag} must be a number from 0 to 1, got ${JSON.stringify(raw)}`);
        out[spec.key] = n;
        break;
      }
      case 'ms': {
        const n = Number(text);
        if (!/^\d+$/.test(text) || n > 3_600_000) throw new UsageError(`--${flag} must be milliseconds from 0 to 3600000, got ${JSON.stringify(raw)}`);
        out[spec.key] = n;
        break;
      }
      case 'url': {
        let url: URL;
        try {
          url = new URL(text);
        } catch {
          throw new UsageError(`--${flag} must be an http(s) URL, got ${JSON.stringify(raw)}`);
        }
        if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError(`--${flag} must be an http(s) URL, got ${JSON.stringify(raw)}`);
        out[spec.key] = text.replace(/\/+$/, '');
        break;
      }
      case 'string':
        if (text === '') throw new UsageError(`--${flag} must not be empty`);
        out[spec.key] = text;
        break;
    }
  }
  // Each buyer spends up to --buyer-delay-ms (half of it on average) thinking in the payment window, so
  // the buyers in it at once bound the windows a second the drop offers: 200 offer about 400 a second.
  // One process driving everything is busy before that; buyers in processes of their own (--split) are
  // not, and at 200 a 100,000-buyer --split drop's selling phase measured the driver's think time, not
  // dropgate (2026-12-03: 112.8 s of buying at 200, 95.2 s at 400, 99.8 s at 600, where more buyers
  // reach selection before the sell-out; a 6,000-buyer drop in one process: 7.9 s at 200, 8.4 s at 400
  // with a confirm p99 of 1.5 s against 0.4). So each buyer process adds its share.
  if (values['concurrency'] === undefined) options.concurrency = DEFAULT_OPTIONS.concurrency * options.buyerProcesses;
  validate(options);
  return { help: values['help'] === true, options };
}

/** Cross-option checks. @throws UsageError */
export function validate(o: DropOptions): void {
  if (o.arrival !== 'burst' && o.arrival !== 'ramp') throw new UsageError(`--arrival must be burst or ramp, got ${JSON.stringify(o.arrival)}`);
  if (!PORTONE_MODES.includes(o.portone)) throw new UsageError(`--portone must be v1, v2 or v2-manual, got ${JSON.stringify(o.portone)}`);
  if (o.seats + o.pool === 0) throw new UsageError('--seats and --pool are both 0: the event needs inventory');
  if (o.failed + o.abandoned > 1) throw new UsageError(`--failed (${o.failed}) + --abandoned (${o.abandoned}) must not exceed 1`);
  if (!/^[a-z0-9][a-z0-9_]{0,62}$/.test(o.database)) throw new UsageError(`--database must be a lower-case database name, got ${JSON.stringify(o.database)}`);
  if (o.eventId !== null && !/^[a-z0-9][a-z0-9-]{0,27}$/.test(o.eventId)) {
    throw new UsageError(`--event-id must match ^[a-z0-9][a-z0-9-]{0,27}$, got ${JSON.stringify(o.eventId)}`);
  }
  if (o.waitingRoom !== null && o.waitingRoom !== 'fixed' && o.waitingRoom !== 'dynamic') {
    throw new UsageError(`--waiting-room must be fixed or dynamic, got ${JSON.stringify(o.waitingRoom)}`);
  }
  if (o.holdAt !== 'confirm' && o.holdAt !== 'order') throw new UsageError(`--hold-at must be confirm or order, got ${JSON.stringify(o.holdAt)}`);
  if (o.waitlist && o.holdAt !== 'order') throw new UsageError('--waitlist needs --hold-at order: an offer is a reservation');
  if (o.killPrimaryAt !== null && !o.cluster) throw new UsageError('--kill-primary-at needs --cluster: the drop kills a primary of its own cluster');
  if (!o.stackProcess && (o.apiProcesses !== 1 || o.workerProcesses !== 1)) {
    throw new UsageError('--api-processes and --worker-processes need --stack-process: they are the processes npm start runs');
  }
  if (o.stackProcess && o.apiUrl !== null) throw new UsageError('--stack-process with --api-url: the API is already running elsewhere');
  if (o.simProcess && o.simUrl !== null) throw new UsageError('--sim-process with --sim-url: the simulator is already running elsewhere');
  if (o.apiUrl !== null && o.simUrl === null) {
    throw new UsageError('--api-url needs --sim-url: the simulator the running worker asks (its PORTONE_API_URL)');
  }
}
