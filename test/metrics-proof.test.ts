/**
 * Proof that the monitoring works against the real thing: a real Prometheus (Debian's `prometheus`
 * package) scrapes two running API processes and a worker while a short simulated drop runs through the
 * PortOne simulator, loads the repository's rule files, and then answers every query of every Grafana
 * dashboard panel and every recording rule with data.
 *
 * The drop exercises each kind of series the panels read: approvals and refusals (SOLD_OUT,
 * AMOUNT_MISMATCH, ORDER_NOT_FOUND, OVERLOADED through load shedding), paid, failed and abandoned
 * payments, duplicated webhooks, a refund, hold expiries, and failed job attempts (PortOne down for a
 * moment). It runs in two rounds so every labelled counter and histogram is scraped once before it
 * moves again, and rates and quantiles have something to measure. An oversell prevented by Postgres
 * cannot be provoked without breaking Redis on purpose: the panels reading it fall back to 0.
 * A second event has a waiting room, reservations at order (hold_at "order") and a waiting list: each
 * round joins and polls its queue (once too fast) and its waiting list, for the fair-rush panels.
 * A third event sells through PortOne V2 with manual confirmation: amounts pre-registered, a forged
 * payment token refused, the genuine one paid, and a webhook with a bad signature refused 401.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { startApi, type RunningApi } from '@dropgate/api';
import { startWorker, type RunningWorker } from '@dropgate/worker';
import { startSimulator, type PaymentOutcome, type PaymentWindowResult, type Simulator } from '@dropgate/portone-sim';
import { admissionToken, signBuyerToken } from '@dropgate/domain';
import { eventId, freePort, http, newWebhookSecret, rand, signWebhook, waitFor } from '@dropgate/testkit';
import { startStack, type TestStack } from '@dropgate/stack';

const root = fileURLToPath(new URL('..', import.meta.url));
const PROMETHEUS = process.env['PROMETHEUS'] ?? '/usr/bin/prometheus';
const API_JOB = 'dropgate-api';
const WORKER_JOB = 'dropgate-worker';

// ------------------------------------------------------------------------------ dashboards and rules

interface Panel {
  id?: number;
  type?: string;
  title?: string;
  targets?: { expr?: string; refId?: string }[];
  panels?: Panel[];
}
interface Rule {
  record?: string;
  alert?: string;
  expr: string;
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? filesUnder(path) : [path];
  });
}
const allPanels = (panels: Panel[] = []): Panel[] => panels.flatMap((p) => [p, ...allPanels(p.panels)]);

const dashboardFiles = filesUnder(join(root, 'infra', 'grafana', 'dashboards')).filter((f) => f.endsWith('.json'));
/** Every query of every panel: `drop-overview.json #9 "Confirm latency p50 / p99" B`. */
const panelQueries = dashboardFiles.flatMap((file) => {
  const dashboard = JSON.parse(readFileSync(file, 'utf8')) as { panels?: Panel[] };
  return allPanels(dashboard.panels).flatMap((p) =>
    (p.targets ?? []).filter((t) => t.expr?.trim()).map((t) => ({
      name: `${relative(join(root, 'infra', 'grafana', 'dashboards'), file)} #${p.id} "${p.title}" ${t.refId ?? ''}`.trim(),
      expr: t.expr as string,
    })),
  );
});

const ruleFiles = readdirSync(join(root, 'infra', 'prometheus', 'rules')).filter((f) => /\.ya?ml$/.test(f)).map((f) => join(root, 'infra', 'prometheus', 'rules', f));
const rules = ruleFiles.flatMap((f) => (parse(readFileSync(f, 'utf8')) as { groups: { rules: Rule[] }[] }).groups.flatMap((g) => g.rules));
const recordNames = [...new Set(rules.flatMap((r) => (r.record ? [r.record] : [])))];

/**
 * A panel query as Grafana sends it with every variable on "All" (the dashboards' allValue is `.*`):
 * Grafana's interval macros become fixed durations fit for a 1 s scrape.
 */
function grafanaToPromQL(expr: string): string {
  return expr
    .replace(/\$\{?__rate_interval\}?/g, '15s')
    .replace(/\$\{?__range_ms\}?/g, '300000')
    .replace(/\$\{?__range_s\}?/g, '300')
    .replace(/\$\{?__range\}?/g, '5m')
    .replace(/\$\{?__interval_ms\}?/g, '5000')
    .replace(/\$\{?__interval\}?/g, '5s')
    .replace(/\$\{(\w+)(?::\w+)?\}|\$(\w+)/g, '.*');
}

/** Metric names a PromQL expression reads (recording-rule names contain `:` and are left out). */
function metricNames(expr: string): string[] {
  return [...expr.matchAll(/\b(?:dropgate|process|nodejs)_[a-z0-9_]+/g)].map((m) => m[0]);
}

// ------------------------------------------------------------------------------------ Prometheus API

interface Sample {
  metric: Record<string, string>;
  value: number;
}

let promUrl = '';

async function promApi(path: string, params: Record<string, string> = {}): Promise<any> {
  const url = new URL(path, promUrl);
  for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
  const res = await fetch(url);
  const body = (await res.json()) as { status: string; data?: unknown; error?: string };
  if (body.status !== 'success') throw new Error(`Prometheus ${path} ${JSON.stringify(params)}: ${body.error ?? res.status}`);
  return body.data;
}

/** An instant query; a scalar result becomes one sample without labels. */
async function query(expr: string): Promise<Sample[]> {
  const data = (await promApi('/api/v1/query', { query: expr })) as { resultType: string; result: any };
  if (data.resultType === 'scalar') return [{ metric: {}, value: Number(data.result[1]) }];
  if (data.resultType === 'vector') return (data.result as { metric: Record<string, string>; value: [number, string] }[]).map((r) => ({ metric: r.metric, value: Number(r.value[1]) }));
  throw new Error(`${expr}: unexpected result type ${data.resultType}`);
}

/** Resolves once Prometheus has scraped every target after `sinceMs` (epoch ms). */
async function scrapedAfter(sinceMs: number, label: string): Promise<void> {
  await waitFor(async () => {
    const rows = await query(`timestamp(up{job=~"${API_JOB}|${WORKER_JOB}"})`);
    return rows.length === 3 && rows.every((r) => r.value * 1000 > sinceMs);
  }, 30_000, `Prometheus to scrape every target after ${label}`);
}

// ------------------------------------------------------------------------------------------- the stack

let sim: Simulator;
let stack: TestStack;
let worker: RunningWorker | undefined;
/** A second API process on the same Redis, database and queues, allowed one confirm in flight. */
let api2: RunningApi | undefined;
let prometheus: ChildProcess | undefined;
let prometheusLog = '';
let tmp = '';
const id = eventId('metrics');
/** The fair-rush event: waiting room, hold_at "order", waiting list. */
const rushId = eventId('rush');
/** The PortOne V2 event (manual confirmation). */
const v2Id = eventId('v2');
const V2_SECRET = newWebhookSecret();
/** The second API process's BUYER_TOKEN_SECRET. */
const BUYER_SECRET = `metrics-proof-buyers-${rand(16)}`;
const V2_STORE = 'store-metrics-proof';
const V2_API_SECRET = rand(24);
/** merchant_uid → the order status the drop must end in. */
const expectedStatus = new Map<string, string>();
const confirmCodes: Record<string, number> = {};

const hostPort = (url: string): string => new URL(url).host;

/** Fails (never skips) without the binary, before anything is started. */
function requirePrometheus(): void {
  if (!existsSync(PROMETHEUS)) {
    throw new Error(`Prometheus not found at ${PROMETHEUS}: install it with \`apt-get update && apt-get install -y prometheus\` (or set PROMETHEUS to its path)`);
  }
}

async function startPrometheus(targets: { api: string[]; worker: string[] }): Promise<void> {
  tmp = mkdtempSync(join(tmpdir(), 'dropgate-prom-'));
  const port = await freePort();
  // JSON is YAML: the configuration the proof runs with, pointing at the repository's rule files.
  const config = {
    global: { scrape_interval: '1s', scrape_timeout: '1s', evaluation_interval: '1s' },
    rule_files: ruleFiles,
    scrape_configs: [
      { job_name: API_JOB, metrics_path: '/metrics', static_configs: [{ targets: targets.api }] },
      { job_name: WORKER_JOB, metrics_path: '/metrics', static_configs: [{ targets: targets.worker }] },
    ],
  };
  writeFileSync(join(tmp, 'prometheus.yml'), JSON.stringify(config, null, 2));
  prometheus = spawn(PROMETHEUS, [
    `--config.file=${join(tmp, 'prometheus.yml')}`,
    `--storage.tsdb.path=${join(tmp, 'data')}`,
    `--web.listen-address=127.0.0.1:${port}`,
    '--log.level=warn',
  ], { stdio: ['ignore', 'ignore', 'pipe'] });
  prometheus.stderr?.on('data', (chunk: Buffer) => { prometheusLog = (prometheusLog + chunk.toString()).slice(-8_000); });
  promUrl = `http://127.0.0.1:${port}`;
  await waitFor(async () => {
    if (prometheus?.exitCode !== null) throw new Error(`prometheus exited with ${prometheus?.exitCode}:\n${prometheusLog}`);
    return fetch(`${promUrl}/-/ready`).then((r) => r.ok, () => false);
  }, 30_000, 'Prometheus to be ready');
  await waitFor(async () => (await query(`up{job=~"${API_JOB}|${WORKER_JOB}"} == 1`)).length === 3, 30_000, 'Prometheus to scrape the API processes and the worker');
}

async function stopPrometheus(): Promise<void> {
  const child = prometheus;
  if (child && child.exitCode === null && child.signalCode === null) {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      child.once('exit', () => { clearTimeout(timer); resolve(); });
      child.kill('SIGTERM');
    });
  }
  if (tmp) rmSync(tmp, { recursive: true, force: true });
}

// -------------------------------------------------------------------------------------------- the drop

async function createOrder(body: Record<string, unknown>): Promise<{ merchant_uid: string; amount: number }> {
  const res = await http(stack.url, 'POST', `/events/${id}/orders`, body);
  if (res.status !== 201) throw new Error(`order ${JSON.stringify(body)}: ${res.status} ${res.text}`);
  return res.body;
}

/** The buyer pays through the simulator (PortOne calls our confirm, then the webhook, twice). */
async function pay(
  order: { merchant_uid: string; amount: number },
  outcome: PaymentOutcome,
  opts: { amount?: number; confirm?: boolean } = {},
): Promise<PaymentWindowResult> {
  const result = await sim.pay({
    merchant_uid: order.merchant_uid,
    amount: opts.amount ?? order.amount,
    ...(opts.confirm === false ? {} : { confirm_url: `${stack.url}/portone/v1/confirm` }),
    notice_url: `${stack.url}/portone/v1/webhook`,
    outcome,
    faults: { webhook_duplicates: 1 },
  });
  if (result.confirm) {
    const code = result.confirm.status === 200 ? 'APPROVED' : String((result.confirm.body as { code?: string } | null)?.code ?? result.confirm.status);
    confirmCodes[code] = (confirmCodes[code] ?? 0) + 1;
  }
  return result;
}

const workerMetrics = async (): Promise<string> => (await fetch(worker!.metricsUrl!)).text();

/** PortOne's REST API is down while a paid webhook arrives: the outcome job fails, then succeeds. */
async function failJobsForAMoment(): Promise<void> {
  const faults = sim.getFaults();
  sim.setFaults({ ...faults, rest_down: true });
  try {
    const order = await createOrder({ buyer_id: `jf-${rand(6)}`, items: [{ pool: 'ga', quantity: 1 }] });
    expectedStatus.set(order.merchant_uid, 'paid');
    await pay(order, 'paid');
    await waitFor(async () => /dropgate_job_failures_total\{queue="payments"\} [1-9]/.test(await workerMetrics()), 20_000, 'a failed payment job attempt');
  } finally {
    sim.setFaults(faults);
  }
}

/**
 * Bursts of concurrent confirms for orders that do not exist, at the API process allowed one confirm
 * in flight: some are shed (OVERLOADED), the others answered ORDER_NOT_FOUND.
 */
async function shedSomeConfirms(): Promise<void> {
  const before = await shedCount();
  for (let burst = 0; burst < 20 && (await shedCount()) === before; burst++) {
    await Promise.all(Array.from({ length: 40 }, () =>
      http(api2!.url, 'POST', '/portone/v1/confirm', { imp_uid: `imp_${rand(12)}`, merchant_uid: `${id}.${rand(11)}`, amount: 3_000 })));
  }
  expect(await shedCount(), 'confirms shed by the in-flight limit').toBeGreaterThan(before);
}

async function shedCount(): Promise<number> {
  const text = await (await fetch(`${api2!.url}/metrics`)).text();
  return Number(/dropgate_requests_shed_total\{reason="in_flight"\} (\d+)/.exec(text)?.[1] ?? 0);
}

/** One round of the drop: two seats and some pool places, every way an order can end. */
async function round(seats: [string, string]): Promise<void> {
  // Abandoned first: its hold expires 5 s later while the rest of the round goes on.
  const abandoned = await createOrder({ buyer_id: `ab-${rand(6)}`, items: [{ pool: 'ga', quantity: 1 }] });
  expect((await pay(abandoned, 'abandoned')).confirm?.status).toBe(200);
  expectedStatus.set(abandoned.merchant_uid, 'expired');

  // A seat paid; a second buyer of the same seat is refused SOLD_OUT.
  const first = await createOrder({ buyer_id: `s1-${rand(6)}`, seats: [seats[0]] });
  const second = await createOrder({ buyer_id: `s2-${rand(6)}`, seats: [seats[0]] });
  const firstPaid = await pay(first, 'paid');
  expect(firstPaid.confirm?.status).toBe(200);
  expectedStatus.set(first.merchant_uid, 'paid');
  paidImpUids.push(firstPaid.payment.imp_uid);
  expect((await pay(second, 'paid')).confirm?.body).toMatchObject({ code: 'SOLD_OUT' });

  const both = await createOrder({ buyer_id: `s3-${rand(6)}`, seats: [seats[1]], items: [{ pool: 'ga', quantity: 2 }] });
  expect((await pay(both, 'paid')).confirm?.status).toBe(200);
  expectedStatus.set(both.merchant_uid, 'paid');

  const failed = await createOrder({ buyer_id: `f-${rand(6)}`, items: [{ pool: 'ga', quantity: 1 }] });
  const declined = await pay(failed, 'failed');
  expect(declined.confirm?.status).toBe(200);
  // PortOne sends no webhook for an ordinary failure unless the console asks for failure notices.
  await sim.sendWebhook(declined.payment.imp_uid, 'failed');
  expectedStatus.set(failed.merchant_uid, 'released');

  const tampered = await createOrder({ buyer_id: `am-${rand(6)}`, items: [{ pool: 'ga', quantity: 1 }] });
  expect((await pay(tampered, 'paid', { amount: tampered.amount - 1_000 })).confirm?.body).toMatchObject({ code: 'AMOUNT_MISMATCH' });

  // A PG without confirm takes the wrong amount: that payment's money is refunded, and the order stays
  // open for a payment of its own amount.
  const unconfirmed = await createOrder({ buyer_id: `rf-${rand(6)}`, items: [{ pool: 'ga', quantity: 1 }] });
  const refunded = await pay(unconfirmed, 'paid', { amount: unconfirmed.amount + 1_000, confirm: false });
  expect(refunded.payment.status).toBe('paid');
  await waitFor(async () => sim.ledger({ imp_uid: refunded.payment.imp_uid }).cancels.some((c) => c.ok), 30_000, 'the wrong amount refunded');
  expectedStatus.set(unconfirmed.merchant_uid, 'pending');

  await shedSomeConfirms();
  await refuseSomeBuyers();
}

/**
 * At the second API process (signed buyers, one order each): an order without a buyer token is refused
 * BUYER_UNVERIFIED, a signed buyer's first order is made (it stays pending) and its second refused
 * ORDER_LIMIT.
 */
async function refuseSomeBuyers(): Promise<void> {
  const order = (body: Record<string, unknown>) => http(api2!.url, 'POST', `/events/${id}/orders`, { items: [{ pool: 'ga', quantity: 1 }], ...body });
  expect((await order({ buyer_id: `anon-${rand(6)}` })).body.code).toBe('BUYER_UNVERIFIED');
  const buyer = `signed-${rand(6)}`;
  const token = signBuyerToken(BUYER_SECRET, buyer, Date.now() + 600_000);
  expect((await order({ buyer_id: buyer, buyer_token: token })).status).toBe(201);
  expect((await order({ buyer_id: buyer, buyer_token: token })).body.code).toBe('ORDER_LIMIT');
}

/** One round at the fair-rush event: queue joins and polls (each once too fast: 429), a waiting-list join and poll. */
async function rushRound(n: number): Promise<void> {
  const tokens: string[] = [];
  for (let i = 0; i < 3; i++) {
    const joined = await http(stack.url, 'POST', `/events/${rushId}/queue`, { buyer_id: `q${n}-${i}` });
    expect(joined.status, joined.text).toBe(201);
    tokens.push(joined.body.queue_token);
  }
  // Each buyer polls twice at once: one answer, one 429 (at most one poll a second). Two polls sent
  // together can still reach the API more than a second apart on a machine busy enough to stall the
  // test for that long (both answered, seen once in a full run beside three other files): such a pair
  // is sent again, a second later, up to three times; a pair is never both refused.
  for (const t of tokens) {
    let statuses: number[] = [];
    for (let attempt = 0; attempt < 3; attempt++) {
      if (attempt > 0) await new Promise((r) => setTimeout(r, 1_100));
      const started = performance.now();
      const both = await Promise.all([0, 1].map(() => http(stack.url, 'GET', `/events/${rushId}/queue/${t}`)));
      statuses = both.map((r) => r.status).sort();
      if (!(statuses[0] === 200 && statuses[1] === 200 && performance.now() - started > 1_000)) break;
    }
    expect(statuses).toEqual([200, 429]);
  }
  // The list takes buyers the room admitted. Which of this round's buyers the room admits depends on
  // its pace against the test's timing; the list's metrics are what is proved here, so the joiner's
  // admission is signed with the event's secret, as the room would have.
  const def = await api2!.deps.catalog.get(rushId);
  const admission = admissionToken(def!.rushSecret!, rushId, `w${n}`, Date.now() + 60_000);
  const listed = await http(stack.url, 'POST', `/events/${rushId}/waitlist`, { buyer_id: `w${n}`, admission_token: admission, items: [{ pool: 'ga', quantity: 1 }] });
  expect(listed.status, listed.text).toBe(201);
  expect((await http(stack.url, 'GET', `/events/${rushId}/waitlist/${listed.body.waitlist_token}`)).status).toBe(200);
}

/**
 * One round at the V2 event: an order (its amount pre-registered), a manual confirmation with a forged
 * payment token (PortOne refuses it), the genuine one (paid), and a webhook whose signature is not ours.
 */
async function v2Round(n: number): Promise<void> {
  const res = await http(stack.url, 'POST', `/events/${v2Id}/orders`, { buyer_id: `v2-${n}`, items: [{ pool: 'ga', quantity: 1 }], portone_api: 'v2' });
  expect(res.status, res.text).toBe(201);
  const order = res.body as { merchant_uid: string; amount: number; order_token: string };
  const w = await sim.payV2({ payment_id: order.merchant_uid, amount: order.amount, mode: 'manual' });
  // The buyer's browser, with the order's token.
  const confirm = (token: string) => http(stack.url, 'POST', '/portone/v2/manual-confirm', { payment_id: order.merchant_uid, payment_token: token, total_amount: order.amount }, { headers: { authorization: `Bearer ${order.order_token}` } });
  const forged = await confirm(`ptk_forged_${rand(8)}`);
  expect(forged.status, forged.text).toBeGreaterThanOrEqual(400);
  const genuine = await confirm(w.payment_token!);
  expect(genuine.status, genuine.text).toBe(200);
  expectedStatus.set(order.merchant_uid, 'paid');
  const body = JSON.stringify({ type: 'Transaction.Paid', timestamp: new Date().toISOString(), data: { paymentId: order.merchant_uid, transactionId: w.transaction_id, storeId: V2_STORE } });
  const forgedWebhook = await http(stack.url, 'POST', '/portone/v2/webhook', undefined, {
    raw: body, headers: { 'content-type': 'application/json', ...signWebhook(newWebhookSecret(), body) },
  });
  expect(forgedWebhook.status).toBe(401);
}

/** imp_uids of payments the drop saw paid. */
const paidImpUids: string[] = [];

async function orderStatuses(): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const muid of expectedStatus.keys()) out.set(muid, (await http(stack.url, 'GET', `/orders/${muid}`, undefined, { admin: true })).body?.status);
  return out;
}

beforeAll(async () => {
  requirePrometheus();
  sim = await startSimulator({ port: 0, webhookSecret: V2_SECRET, storeId: V2_STORE, v2ApiSecret: V2_API_SECRET, faults: { webhook_retry_ms: 50 } });
  const workerPort = await freePort();
  stack = await startStack({
    label: 'metrics', portoneUrl: sim.url, worker: false,
    env: {
      WORKER_METRICS_PORT: String(workerPort),
      PORTONE_V2_API_URL: sim.url, PORTONE_V2_API_SECRET: V2_API_SECRET, PORTONE_V2_STORE_ID: V2_STORE, PORTONE_WEBHOOK_SECRET: V2_SECRET,
    },
  });
  worker = await startWorker(stack.config, { prefix: stack.prefix, metricsServer: true });
  if (!worker.metricsUrl) throw new Error('the worker did not start its metrics server');
  // The second API process also wants signed buyers, one order each (the buyer-refusal series).
  api2 = await startApi({
    ...stack.config, confirmMaxInFlight: 1, buyerTokenSecrets: [BUYER_SECRET], orderLimits: { ...stack.config.orderLimits, maxOrdersPerBuyer: 1 },
  }, { logger: false, queuePrefix: stack.prefix });
  await startPrometheus({ api: [hostPort(stack.url), hostPort(api2.url)], worker: [hostPort(worker.metricsUrl)] });

  const created = await http(stack.url, 'POST', '/admin/events', {
    id, name: 'Metrics proof', hold_ttl_seconds: 5,
    seat_blocks: [{ section: 'M', rows: 1, seats_per_row: 4, price: 10_000 }],
    pools: [{ id: 'ga', name: 'GA', capacity: 40, price: 3_000 }],
  }, { admin: true });
  expect(created.status, created.text).toBe(201);
  const rush = await http(stack.url, 'POST', '/admin/events', {
    id: rushId, name: 'Metrics proof: fair rush', hold_at: 'order', reservation_ttl_seconds: 60, waitlist: { offer_ttl_seconds: 30 },
    waiting_room: { mode: 'dynamic', admit_per_second: 1, max_active: 1, admission_ttl_seconds: 60 },
    pools: [{ id: 'ga', name: 'GA', capacity: 10, price: 3_000 }],
  }, { admin: true });
  expect(rush.status, rush.text).toBe(201);
  const v2 = await http(stack.url, 'POST', '/admin/events', {
    id: v2Id, name: 'Metrics proof: PortOne V2', pools: [{ id: 'ga', name: 'GA', capacity: 10, price: 5_000 }],
  }, { admin: true });
  expect(v2.status, v2.text).toBe(201);
  await waitFor(async () => api2!.deps.catalog.isKnown(id) && api2!.deps.catalog.isKnown(rushId), 10_000, 'the second API process to know the events');
  await scrapedAfter(Date.now(), 'the event was created');

  await failJobsForAMoment();
  await round(['M-1-1', 'M-1-2']);
  await rushRound(1);
  await v2Round(1);
  // Round two moves series Prometheus has already seen, so rates and quantiles are not empty.
  await scrapedAfter(Date.now(), 'round one');
  await round(['M-1-3', 'M-1-4']);
  await rushRound(2);
  await v2Round(2);

  await sim.settled();
  await waitFor(async () => {
    const now = await orderStatuses();
    return [...expectedStatus].every(([muid, status]) => now.get(muid) === status);
  }, 30_000, 'every order of the drop to reach its final status').catch(async (error: unknown) => {
    const now = await orderStatuses();
    const off = [...expectedStatus].filter(([muid, status]) => now.get(muid) !== status).map(([muid, status]) => `${muid}: ${now.get(muid)}, expected ${status}`);
    throw new Error(`${(error as Error).message}:\n${off.join('\n')}`);
  });
  // PortOne sends a webhook again after a 200 (its retries): the worker acted on that news already.
  await sim.sendWebhook(paidImpUids[0]!, 'paid');
  // Twice: a series born in the last moments of the drop needs two samples for rate() to answer.
  await scrapedAfter(Date.now(), 'the drop settled');
  await scrapedAfter(Date.now(), 'the drop settled (second scrape)');
}, 180_000);

afterAll(async () => {
  await stopPrometheus().catch(() => undefined);
  await api2?.close().catch(() => undefined);
  await worker?.close().catch(() => undefined);
  await stack?.close().catch(() => undefined);
  await sim?.close().catch(() => undefined);
}, 60_000);

// ------------------------------------------------------------------------------------------ the proof

describe('Prometheus scraping a drop', () => {
  it('saw every kind of series the dashboards read move', async () => {
    const value = async (expr: string) => (await query(expr)).reduce((sum, s) => sum + s.value, 0);
    const codes = new Map((await query(`sum by (code) (dropgate_confirms_total{event=~"${id}|unknown"})`)).map((s) => [s.metric['code'], s.value]));
    for (const code of ['APPROVED', 'SOLD_OUT', 'AMOUNT_MISMATCH', 'ORDER_NOT_FOUND', 'OVERLOADED']) {
      expect(codes.get(code) ?? 0, `confirms answered ${code}`).toBeGreaterThan(0);
    }
    expect(codes.get('APPROVED')).toBe(confirmCodes['APPROVED']);
    expect(await value(`dropgate_holds_committed_total{event="${id}"}`)).toBe(5);
    expect(await value(`dropgate_holds_released_total{event="${id}", reason="payment_failed"}`)).toBe(2);
    expect(await value(`dropgate_holds_expired_total{event="${id}"}`)).toBe(2);
    expect(await value('dropgate_refunds_total{reason="amount_mismatch"}')).toBe(2);
    expect(await value('dropgate_webhooks_received_total{status="paid", verdict="queued"}')).toBeGreaterThanOrEqual(5);
    expect(await value('dropgate_webhooks_received_total{status="failed"}')).toBeGreaterThanOrEqual(2);
    expect(await value('dropgate_job_failures_total{queue="payments"}')).toBeGreaterThan(0);
    expect(await value('dropgate_requests_shed_total{reason="in_flight"}')).toBeGreaterThan(0);
    expect(await value('dropgate_portone_requests_total')).toBeGreaterThan(0);
    expect(await value(`dropgate_orders{event="${id}", status="paid"}`)).toBe(5);
    expect(await value('dropgate_buyer_refusals_total{endpoint="orders", code="BUYER_UNVERIFIED"}')).toBe(2);
    expect(await value('dropgate_buyer_refusals_total{endpoint="orders", code="ORDER_LIMIT"}')).toBe(2);
  });

  it('saw the waiting room and the waiting list', async () => {
    const value = async (expr: string) => (await query(expr)).reduce((sum, s) => sum + s.value, 0);
    expect(await value(`dropgate_waiting_room_joins_total{event="${rushId}"}`)).toBe(6);
    const polls = new Map((await query(`sum by (state) (dropgate_waiting_room_polls_total{event="${rushId}"})`)).map((s) => [s.metric['state'], s.value]));
    expect(polls.get('rate_limited')).toBe(6);
    expect((polls.get('admitted') ?? 0) + (polls.get('waiting') ?? 0)).toBe(6);
    // max_active 1: one buyer admitted per round at most, the rest still waiting.
    expect(await value(`max(dropgate_waiting_room_waiting{event="${rushId}"})`)).toBeGreaterThanOrEqual(4);
    expect(await value(`dropgate_waitlist_joins_total{event="${rushId}"}`)).toBe(2);
    // Places are free: each buyer on the list is offered an order at their first poll.
    expect(await value(`sum(dropgate_waitlist_polls_total{event="${rushId}", state="offered"})`)).toBe(2);
    expect(await value(`max(dropgate_waitlist_offers_open{event="${rushId}"})`)).toBe(2);
    expect(await value(`max(dropgate_waitlist_waiting{event="${rushId}"})`)).toBe(0);
  });

  it('saw PortOne V2: pre-registrations, manual confirmations paid and refused, signature failures', async () => {
    const value = async (expr: string) => (await query(expr)).reduce((sum, s) => sum + s.value, 0);
    expect(await value('dropgate_portone_pre_registrations_total{result="ok"}')).toBe(2);
    expect(await value('dropgate_manual_confirms_total{result="paid"}')).toBe(2);
    expect(await value('dropgate_manual_confirms_total{result="refused"}')).toBe(2);
    expect(await value('dropgate_portone_signature_failures_total{endpoint="webhook"}')).toBe(2);
    expect(await value(`dropgate_holds_committed_total{event="${v2Id}"}`)).toBe(2);
  });

  // Every paid payment's webhook came twice (webhook_duplicates: 1), and one came again after the order
  // settled: a copy the worker already acted on (or whose job has not started) is a duplicate.
  it('counts duplicated webhooks as verdict="duplicate"', async () => {
    const duplicates = (await query('dropgate_webhooks_received_total{verdict="duplicate"}')).reduce((sum, s) => sum + s.value, 0);
    expect(duplicates).toBeGreaterThan(0);
  });

  it('exposes every metric the dashboards and rules read (an oversell prevented cannot happen here)', async () => {
    const names = [...new Set([...panelQueries.map((q) => q.expr), ...rules.map((r) => r.expr)].flatMap(metricNames))];
    expect(names.length).toBeGreaterThan(20);
    const missing: string[] = [];
    for (const name of names) {
      if (name === 'dropgate_oversells_prevented_total') continue;
      if ((await query(`count(${name})`)).length === 0) missing.push(name);
    }
    expect(missing).toEqual([]);
  });

  it('answers every query of every dashboard panel with data', async () => {
    expect(panelQueries.length).toBeGreaterThan(30);
    const empty: string[] = [];
    for (const q of panelQueries) {
      const promql = grafanaToPromQL(q.expr);
      const samples = await query(promql);
      if (samples.length === 0) empty.push(`${q.name}: no series for ${promql}`);
      else if (!samples.some((s) => Number.isFinite(s.value))) empty.push(`${q.name}: only NaN/Inf for ${promql}`);
    }
    expect(empty).toEqual([]);
  });

  it('feeds the dashboards\' event and instance variables', async () => {
    const events = (await promApi('/api/v1/label/event/values', { 'match[]': 'dropgate_inventory' })) as string[];
    expect(events).toContain(id);
    const instances = (await promApi('/api/v1/label/instance/values', { 'match[]': 'dropgate_dependency_up' })) as string[];
    expect(instances.sort()).toEqual([hostPort(stack.url), hostPort(api2!.url), hostPort(worker!.metricsUrl!)].sort());
  });

  it('shows inventory once with two API processes reporting it (max, not sum)', async () => {
    const reporters = await query(`count by (pool, state) (dropgate_inventory{event="${id}"})`);
    expect(reporters.length).toBe(6);
    for (const r of reporters) expect(r.value, JSON.stringify(r.metric)).toBe(2);

    const panel = panelQueries.find((q) => q.name.startsWith('drop-overview.json') && /"Inventory remaining"/.test(q.name));
    expect(panel, 'the drop overview\'s "Inventory remaining" panel').toBeDefined();
    const shown = new Map((await query(grafanaToPromQL(panel!.expr))).filter((s) => s.metric['event'] === id).map((s) => [s.metric['pool'], s.value]));
    const availability = (await http(stack.url, 'GET', `/events/${id}`)).body.availability;
    expect(Object.fromEntries(shown)).toEqual({
      seats: availability.seats.available,
      ga: availability.pools.find((p: { id: string }) => p.id === 'ga').available,
    });
    // 4 seats, all sold; 40 places, 5 sold.
    expect(Object.fromEntries(shown)).toEqual({ seats: 0, ga: 35 });
  });

  it('records every recording rule', async () => {
    expect(recordNames.length).toBeGreaterThan(10);
    const missing = async () => {
      const out: string[] = [];
      for (const name of recordNames) {
        const samples = await query(name);
        if (!samples.some((s) => Number.isFinite(s.value))) out.push(`${name}: ${samples.length ? 'only NaN' : 'no data'}`);
      }
      return out;
    };
    // The rule groups run every second; give them a few evaluations after the last scrape.
    await waitFor(async () => (await missing()).length === 0, 15_000, 'every recording rule to have data').catch(() => undefined);
    expect(await missing()).toEqual([]);
  });

  it('loads every rule and evaluates each without error', async () => {
    type LoadedRule = { name: string; type: string; health: string; lastError?: string; state?: string };
    const loaded = async (): Promise<LoadedRule[]> =>
      ((await promApi('/api/v1/rules')) as { groups: { rules: LoadedRule[] }[] }).groups.flatMap((g) => g.rules);
    await waitFor(async () => (await loaded()).every((r) => r.health !== 'unknown'), 15_000, 'every rule to be evaluated').catch(() => undefined);
    const all = await loaded();
    expect(all.length).toBe(rules.length);
    expect(all.filter((r) => r.health !== 'ok').map((r) => `${r.name}: ${r.health} ${r.lastError ?? ''}`)).toEqual([]);
    expect(all.filter((r) => r.type === 'alerting').map((r) => r.name).sort()).toEqual(rules.flatMap((r) => (r.alert ? [r.alert] : [])).sort());
    // Nothing was oversold, and the alert that says so stays quiet.
    expect(all.find((r) => r.name === 'DropgateOversellPrevented')?.state).toBe('inactive');
  });
});
