/**
 * Prometheus metrics (prom-client), all prefixed `dropgate_`. Labels stay low-cardinality: event ids,
 * codes, statuses, queue names; never an order, buyer or seat.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { bearerToken, sameSecret } from '@dropgate/domain';

/** Confirms answered within this many seconds count as good for the latency SLO. */
export const CONFIRM_SLO_SECONDS = 0.25;
/** PortOne's own confirm deadline. */
export const PORTONE_DEADLINE_SECONDS = 5;

export function confirmBuckets(budgetMs: number): number[] {
  const set = new Set([0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, CONFIRM_SLO_SECONDS, 0.5, 1, budgetMs / 1000, PORTONE_DEADLINE_SECONDS, 10]);
  return [...set].sort((a, b) => a - b);
}

export type Collect = (registry: Registry) => Promise<void> | void;

/** Metrics both processes expose. */
export function createCommonMetrics(registry: Registry) {
  return {
    dependencyUp: new Gauge({ name: 'dropgate_dependency_up', help: 'Whether a dependency answered its last check (1) or not (0)', labelNames: ['dependency'], registers: [registry] }),
    inventory: new Gauge({ name: 'dropgate_inventory', help: 'Inventory by event, pool ("" for seats) and state, read from Redis when scraped', labelNames: ['event', 'pool', 'state'], registers: [registry] }),
    holdsLive: new Gauge({ name: 'dropgate_holds_live', help: 'Holds currently live in Redis', labelNames: ['event'], registers: [registry] }),
    holdsOverdue: new Gauge({ name: 'dropgate_holds_overdue', help: 'Holds past their expiry plus the sweep grace', labelNames: ['event'], registers: [registry] }),
    // The worker settles through PortOne; the API calls V2 for manual confirmation and pre-registration.
    portoneRequests: new Counter({ name: 'dropgate_portone_requests_total', help: 'PortOne REST calls by endpoint and result', labelNames: ['endpoint', 'result'], registers: [registry] }),
    clockSynced: new Gauge({ name: 'dropgate_clock_synced', help: "Whether this process measured its offset from Redis's clock within the last minute (1) or not (0: it decides by its host's clock and the last offset it had, if any)", registers: [registry] }),
    clockOffset: new Gauge({ name: 'dropgate_clock_offset_seconds', help: "Redis's clock minus this host's wall clock, as of the last measurement (every 10 s): decisions follow Redis's clock whatever this says, but V2 signature checks and logs read the wall clock (fix the host's NTP)", registers: [registry] }),
    portoneDuration: new Histogram({ name: 'dropgate_portone_request_duration_seconds', help: 'PortOne REST call latency', labelNames: ['endpoint'], buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers: [registry] }),
  };
}

export function createApiMetrics(registry: Registry, budgetMs: number) {
  return {
    ...createCommonMetrics(registry),
    confirmDuration: new Histogram({
      name: 'dropgate_confirm_duration_seconds',
      help: 'Time from receiving a confirm to sending its answer, by outcome code',
      labelNames: ['code'],
      buckets: confirmBuckets(budgetMs),
      registers: [registry],
    }),
    confirms: new Counter({ name: 'dropgate_confirms_total', help: 'Confirm answers by event and outcome code', labelNames: ['event', 'code'], registers: [registry] }),
    deadlineMisses: new Counter({ name: 'dropgate_confirm_deadline_misses_total', help: 'Confirm answers that left after the budget, their body in with time to answer', registers: [registry] }),
    lateBodies: new Counter({
      name: 'dropgate_confirm_late_bodies_total',
      help: 'Confirms whose body came in with the budget spent (a slow network or caller): refused DEADLINE at once, not counted as deadline misses',
      registers: [registry],
    }),
    shed: new Counter({ name: 'dropgate_requests_shed_total', help: 'Requests refused to protect the deadline', labelNames: ['reason'], registers: [registry] }),
    inFlight: new Gauge({ name: 'dropgate_confirms_in_flight', help: 'Confirms being processed', registers: [registry] }),
    confirmLagReserve: new Gauge({ name: 'dropgate_confirm_lag_reserve_seconds', help: 'How much earlier than the budget a confirm refuses because the event loop lagged in the last second (the loop\'s longest hold, capped at a quarter of the budget)', registers: [registry] }),
    webhooks: new Counter({ name: 'dropgate_webhooks_received_total', help: 'Webhooks received by claimed status (ready, paid, failed, cancelled or other) and verdict', labelNames: ['status', 'verdict'], registers: [registry] }),
    webhooksDeferred: new Counter({
      name: 'dropgate_webhooks_deferred_total',
      help: 'Webhooks whose PortOne lookup the per-payment bound put off (WEBHOOK_LOOKUPS_PER_PAYMENT per WEBHOOK_LOOKUP_WINDOW_SECONDS): one later lookup answers them, none is dropped; by reason (rate: the payment\'s lookups are used up, unknown_payment: PortOne lately said it does not know the payment)',
      labelNames: ['reason'], registers: [registry],
    }),
    signatureFailures: new Counter({ name: 'dropgate_portone_signature_failures_total', help: 'V2 requests refused 401 for their signature, by endpoint (confirm, webhook) and why', labelNames: ['endpoint', 'reason'], registers: [registry] }),
    manualConfirms: new Counter({ name: 'dropgate_manual_confirms_total', help: 'V2 manual confirmations by result (paid, refused, pending: PortOne did not answer, rejected: dropgate refused before PortOne)', labelNames: ['result'], registers: [registry] }),
    preRegistrations: new Counter({ name: 'dropgate_portone_pre_registrations_total', help: 'V2 amounts pre-registered at order creation, by result (ok, failed)', labelNames: ['result'], registers: [registry] }),
    buyerRefusals: new Counter({
      name: 'dropgate_buyer_refusals_total',
      help: 'Orders, queue joins and waiting-list joins refused for their buyer, by endpoint (orders, queue, waitlist) and code (BUYER_UNVERIFIED: no valid buyer_token with BUYER_TOKEN_SECRET set; ORDER_LIMIT: the signed buyer made ORDERS_PER_BUYER_MAX orders for the event; RATE_LIMITED: the client address sent ORDERS_PER_IP_PER_MINUTE)',
      labelNames: ['endpoint', 'code'], registers: [registry],
    }),
    ready: new Gauge({ name: 'dropgate_ready', help: 'Readiness of this API process (1 ready)', registers: [registry] }),
    queueJoins: new Counter({ name: 'dropgate_waiting_room_joins_total', help: 'Waiting-room joins answered (a buyer joining again counts again, and gets the same place)', labelNames: ['event'], registers: [registry] }),
    queuePolls: new Counter({
      name: 'dropgate_waiting_room_polls_total', help: 'Waiting-room polls by the state answered (waiting, admitted, sold_out, expired, rate_limited)',
      labelNames: ['event', 'state'], registers: [registry],
    }),
    queueWaiting: new Gauge({ name: 'dropgate_waiting_room_waiting', help: 'Buyers waiting in the waiting room, read from Redis when scraped', labelNames: ['event'], registers: [registry] }),
    queueActive: new Gauge({ name: 'dropgate_waiting_room_active', help: 'Admitted buyers who have not ordered yet (counted against max_active)', labelNames: ['event'], registers: [registry] }),
    queueAdmitted: new Gauge({ name: 'dropgate_waiting_room_admitted', help: 'Buyers admitted so far (grows; rate() of it is the admission pace)', labelNames: ['event'], registers: [registry] }),
    waitlistJoins: new Counter({ name: 'dropgate_waitlist_joins_total', help: 'Waiting-list joins answered', labelNames: ['event'], registers: [registry] }),
    waitlistPolls: new Counter({
      name: 'dropgate_waitlist_polls_total', help: 'Waiting-list polls by the state answered (waiting, offered, expired, sold_out)',
      labelNames: ['event', 'state'], registers: [registry],
    }),
    waitlistSteps: new Counter({
      name: 'dropgate_waitlist_steps_total', help: 'Waiting-list steps polls ran (run), or left to a later poll because polls came faster than the pace (paced)',
      labelNames: ['event', 'result'], registers: [registry],
    }),
    waitlistWaiting: new Gauge({ name: 'dropgate_waitlist_waiting', help: 'Buyers waiting on the waiting list, read from Redis when scraped', labelNames: ['event'], registers: [registry] }),
    waitlistOffers: new Gauge({ name: 'dropgate_waitlist_offers_open', help: 'Waiting-list offers open (reserved, not yet paid or lapsed)', labelNames: ['event'], registers: [registry] }),
    queuePace: new Gauge({ name: 'dropgate_waiting_room_pace', help: 'The dynamic waiting room pace, buyers admitted per second', labelNames: ['event'], registers: [registry] }),
  };
}
export type ApiMetrics = ReturnType<typeof createApiMetrics>;

/**
 * What a process's clock reports after each measurement (RedisClock's `onResult`): the host's wall clock
 * against Redis's now (what NTP and V2's signature check read), not the offset of the monotonic clock
 * the decisions use (attack round 22), and whether it was measured within the last minute.
 */
export function clockReporter(metrics: ReturnType<typeof createCommonMetrics>): (clock: { wallOffsetMs(): number; synced: boolean }) => void {
  return (clock) => {
    metrics.clockOffset.set(clock.wallOffsetMs() / 1000);
    metrics.clockSynced.set(clock.synced ? 1 : 0);
  };
}

export function createWorkerMetrics(registry: Registry) {
  return {
    ...createCommonMetrics(registry),
    holdsCreated: new Counter({ name: 'dropgate_holds_created_total', help: 'Holds recorded in Postgres', labelNames: ['event'], registers: [registry] }),
    holdsCommitted: new Counter({ name: 'dropgate_holds_committed_total', help: 'Holds that became sales', labelNames: ['event'], registers: [registry] }),
    holdsReleased: new Counter({ name: 'dropgate_holds_released_total', help: 'Holds released without a sale', labelNames: ['event', 'reason'], registers: [registry] }),
    holdsExpired: new Counter({ name: 'dropgate_holds_expired_total', help: 'Holds that ran out unpaid', labelNames: ['event'], registers: [registry] }),
    orders: new Gauge({ name: 'dropgate_orders', help: 'Orders by event and status, read from Postgres when scraped', labelNames: ['event', 'status'], registers: [registry] }),
    holdToPaid: new Histogram({ name: 'dropgate_hold_to_paid_seconds', help: 'Time from the hold to the payment recorded paid', buckets: [1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600], registers: [registry] }),
    paidToTicketed: new Histogram({ name: 'dropgate_paid_to_ticketed_seconds', help: 'Time from PortOne reporting paid to tickets issued', buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300], registers: [registry] }),
    unverifiedPayments: new Counter({ name: 'dropgate_payments_unverified_total', help: 'Payments a confirm approved that PortOne did not vouch for (unknown, another order, another amount), taken off their hold', registers: [registry] }),
    orderLocksLost: new Counter({
      name: 'dropgate_order_locks_lost_total',
      help: "Order settlement locks found taken by another holder while their holder still worked (a stalled worker, a Redis failover): that order's outcomes may have been decided side by side",
      registers: [registry],
    }),
    refunds: new Counter({ name: 'dropgate_refunds_total', help: 'Refunds requested through PortOne, by reason', labelNames: ['reason'], registers: [registry] }),
    oversellsPrevented: new Counter({ name: 'dropgate_oversells_prevented_total', help: 'Ticket inserts Postgres refused by its oversell constraints', labelNames: ['event'], registers: [registry] }),
    queueJobs: new Gauge({ name: 'dropgate_queue_jobs', help: 'Jobs per queue and state, read when scraped', labelNames: ['queue', 'state'], registers: [registry] }),
    jobDuration: new Histogram({ name: 'dropgate_job_duration_seconds', help: 'Job processing time', labelNames: ['queue', 'result'], buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers: [registry] }),
    jobFailures: new Counter({ name: 'dropgate_job_failures_total', help: 'Job attempts that failed', labelNames: ['queue'], registers: [registry] }),
    ledgerPayments: new Counter({ name: 'dropgate_ledger_payments_total', help: "Paid payments the ledger sweep listed from PortOne, by what it found: known (in the record), queued (not in the record: settled now), unknown_order (no such order of dropgate's)", labelNames: ['api', 'result'], registers: [registry] }),
    jobsFailedForGood: new Counter({ name: 'dropgate_jobs_failed_for_good_total', help: 'Jobs no worker will run again (their last attempt failed, or they failed for a reason no retry changes)', labelNames: ['queue'], registers: [registry] }),
  };
}
export type WorkerMetrics = ReturnType<typeof createWorkerMetrics>;

/** A registry with the default process metrics. */
export function createRegistry(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  return registry;
}

export { Registry };

/**
 * Every metric name the API and the worker export (histograms without their `_bucket/_sum/_count`
 * suffixes), default process metrics included: what dashboards and rules may query.
 */
export function exportedMetricNames(): string[] {
  const api = createRegistry();
  createApiMetrics(api, 3000);
  const worker = createRegistry();
  createWorkerMetrics(worker);
  return [...new Set([...api.getMetricsAsArray(), ...worker.getMetricsAsArray()].map((m) => m.name))].sort();
}

/**
 * Whether a scrape may read /metrics: always without METRICS_TOKEN; with it, only with
 * `Authorization: Bearer <METRICS_TOKEN>` (compared in constant time: both are hashed first).
 */
export function scrapeAllowed(authorization: string | undefined, metricsToken: string | undefined): boolean {
  if (metricsToken === undefined) return true;
  const given = bearerToken(authorization);
  return given !== null && sameSecret(given, metricsToken);
}
