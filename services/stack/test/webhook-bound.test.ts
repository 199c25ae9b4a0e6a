/**
 * What unsigned V1 webhooks can make dropgate call is bounded (invariant 9): statuses PortOne never
 * sends are refused, and however many webhooks name a payment (or made-up payments of one order),
 * whatever they claim, the workers' PortOne lookups are paced per payment; none is dropped, so a real
 * payment a flood of hints came before is still settled. PortOne is the simulator behind a counting
 * HTTP proxy of this file (which can also answer 404 for a payment, as PortOne does for one it does
 * not know yet); Redis and Postgres are real.
 */
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSimulator, type Simulator } from '@dropgate/portone-sim';
import { http, impUid, waitFor } from '@dropgate/testkit';
import { startStack, type TestStack } from '@dropgate/stack';
import { eventKeys } from '@dropgate/redis';
import { shop } from './support/shop.ts';

/** The pace this file's stack runs with: a burst of 3 lookups per payment, refilled over 3 s. */
const LOOKUPS = 3;
const WINDOW_MS = 3_000;
const INTERVAL_MS = WINDOW_MS / LOOKUPS;
/** The default PAYMENTS_PER_ORDER_MAX: payments numbered one by one per order. */
const PAYMENTS_PER_ORDER = 8;

/**
 * PortOne's REST API as the workers reach it, counted; a payment can be hidden (answered 404 alone, left
 * out of list answers, as PortOne does for a payment it does not know yet). The workers look payments up
 * together (`GET /payments?imp_uid[]=`) and ask alone for one a list answer left out.
 */
interface PortOneProxy {
  url: string;
  /**
   * Lookups of one imp_uid that told the workers something: `GET /payments/{imp_uid}` calls, and list
   * answers that had it (one a list answer left out is asked alone next, which counts).
   */
  lookups(imp: string): number;
  /** List calls (`GET /payments?imp_uid[]=`) that asked for one imp_uid, whether or not it was answered. */
  listed(imp: string): number;
  /** `GET /payments/findAll/{merchant_uid}` calls for one order. */
  findAll(merchantUid: string): number;
  hide(imp: string): void;
  show(imp: string): void;
  close(): Promise<void>;
}

async function startProxy(target: string): Promise<PortOneProxy> {
  const lookups = new Map<string, number>();
  const listed = new Map<string, number>();
  const findAll = new Map<string, number>();
  const hidden = new Set<string>();
  const bump = (m: Map<string, number>, k: string) => m.set(k, (m.get(k) ?? 0) + 1);
  const server: Server = createServer((req, res) => {
    const url = req.url ?? '/';
    const path = url.split('?')[0]!;
    const one = req.method === 'GET' ? /^\/payments\/([^/]+)$/.exec(path) : null;
    if (one) {
      const imp = decodeURIComponent(one[1]!);
      bump(lookups, imp);
      if (hidden.has(imp)) {
        res.writeHead(404, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ code: 1, message: '존재하지 않는 결제정보입니다.', response: null }));
        return;
      }
    }
    const all = req.method === 'GET' ? /^\/payments\/findAll\/([^/]+)/.exec(path) : null;
    if (all) bump(findAll, decodeURIComponent(all[1]!));
    const list = req.method === 'GET' && path === '/payments';
    if (list) for (const imp of new URL(url, target).searchParams.getAll('imp_uid[]')) bump(listed, imp);
    const upstream = httpRequest(new URL(url, target), { method: req.method, headers: req.headers }, (answer) => {
      if (!list || answer.statusCode !== 200) {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
        return;
      }
      // A list answer: hidden payments left out, the others counted as looked up.
      const chunks: Buffer[] = [];
      answer.on('data', (c: Buffer) => chunks.push(c));
      answer.on('end', () => {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { response: { imp_uid: string }[] | null };
        body.response = (body.response ?? []).filter((p) => !hidden.has(p.imp_uid));
        for (const p of body.response) bump(lookups, p.imp_uid);
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
      });
    });
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    lookups: (imp) => lookups.get(imp) ?? 0,
    listed: (imp) => listed.get(imp) ?? 0,
    findAll: (muid) => findAll.get(muid) ?? 0,
    hide: (imp) => void hidden.add(imp),
    show: (imp) => void hidden.delete(imp),
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

let sim: Simulator;
let proxy: PortOneProxy;
let stack: TestStack;
beforeAll(async () => {
  sim = await startSimulator({ port: 0, faults: { webhook_retry_ms: 50 } });
  proxy = await startProxy(sim.url);
  stack = await startStack({
    label: 'whbound', portoneUrl: proxy.url,
    env: { WEBHOOK_LOOKUPS_PER_PAYMENT: String(LOOKUPS), WEBHOOK_LOOKUP_WINDOW_SECONDS: String(WINDOW_MS / 1000) },
  });
});
afterAll(async () => {
  await stack?.close();
  await proxy?.close();
  await sim?.close();
});

const { confirmUrl, noticeUrl, event, order, detail, orderIs } = shop(() => stack, { prefix: 'wb', section: 'S' });
const webhook = (body: Record<string, unknown>) => http(stack.url, 'POST', '/portone/v1/webhook', body);

/** Sends every webhook at once; @returns their answers and how long the flood took (ms). */
async function flood(bodies: Record<string, unknown>[]): Promise<{ statuses: number[]; ms: number }> {
  const started = Date.now();
  const answers = await Promise.all(bodies.map(webhook));
  return { statuses: answers.map((a) => a.status), ms: Date.now() - started };
}

/** Until no payment job waits, runs or is put off (the deferred lookups included). */
const paymentsDrained = (timeoutMs = 20_000) => waitFor(async () => {
  const c = await stack.api.deps.queues.payments.getJobCounts('waiting', 'active', 'delayed', 'prioritized');
  return (c.waiting ?? 0) + (c.active ?? 0) + (c.delayed ?? 0) + (c.prioritized ?? 0) === 0;
}, timeoutMs, 'the payment jobs to be done');

/** The most lookups a flood lasting `ms` may start for one payment: a burst, then one per interval, and the one after. */
const bound = (ms: number) => LOOKUPS + 1 + Math.floor(ms / INTERVAL_MS);

async function deferred(reason: 'rate' | 'unknown_payment'): Promise<number> {
  const metric = await stack.api.deps.metrics.webhooksDeferred.get();
  return metric.values.filter((v) => v.labels.reason === reason).reduce((n, v) => n + v.value, 0);
}

describe('webhook statuses PortOne V1 never sends', () => {
  it('are refused 400 with a code and a message, queue no job and store nothing', async () => {
    const id = await event({ seats: 1 });
    const a = await order(id, { buyer_id: 'a', seats: ['S-1-1'] });
    const imp = impUid();
    for (const status of ['x', 'junk', 'PAID', 'paid ', 'partial_cancelled', 'vbank_issued']) {
      const res = await webhook({ imp_uid: imp, merchant_uid: a.merchant_uid, status });
      expect(res.status, `${status}: ${res.text}`).toBe(400);
      expect(res.body).toMatchObject({ code: 'VALIDATION_FAILED', message: expect.stringContaining('ready, paid, failed or cancelled') });
    }
    const form = await http(stack.url, 'POST', '/portone/v1/webhook', undefined, {
      raw: `imp_uid=${imp}&merchant_uid=${encodeURIComponent(a.merchant_uid)}&status=z`,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(form.status).toBe(400);
    expect(await stack.redis.exists(eventKeys(id).webhooks(a.merchant_uid))).toBe(0);
    const jobs = await stack.api.deps.queues.payments.getJobs(['waiting', 'active', 'delayed', 'completed']);
    expect(jobs.filter((j) => j.data?.merchantUid === a.merchant_uid)).toEqual([]);
    expect(proxy.lookups(imp)).toBe(0);
    // The statuses PortOne sends are taken.
    expect((await webhook({ imp_uid: imp, merchant_uid: a.merchant_uid, status: 'paid' })).status).toBe(200);
  });
});

describe('a flood of webhooks costs a few PortOne lookups per payment, whatever it claims', () => {
  it('naming a payment PortOne does not know: at most the bound, and later webhooks wait a window for one more lookup', async () => {
    const id = await event({ seats: 1 });
    const a = await order(id, { buyer_id: 'a', seats: ['S-1-1'] });
    const imp = impUid();
    const first = await flood(Array.from({ length: 60 }, () => ({ imp_uid: imp, merchant_uid: a.merchant_uid, status: 'paid' })));
    expect(first.statuses.every((s) => s === 200)).toBe(true);
    await paymentsDrained();
    const calls = proxy.lookups(imp);
    expect(calls).toBeGreaterThanOrEqual(1);
    // The pace's lookups, and the one recheck a few seconds after PortOne first said it does not know it.
    expect(calls).toBeLessThanOrEqual(bound(first.ms) + 1);
    // Asked together with other payments first, and alone when the list answer left it out: no more list entries than lookups.
    expect(proxy.listed(imp)).toBeGreaterThanOrEqual(1);
    expect(proxy.listed(imp)).toBeLessThanOrEqual(calls);
    // PortOne said it does not know it: more hints are answered by one lookup a window later, not one each.
    const deferredBefore = await deferred('unknown_payment');
    const again = await flood(Array.from({ length: 30 }, (_, i) => ({ imp_uid: imp, merchant_uid: a.merchant_uid, status: (['paid', 'ready', 'failed', 'cancelled'] as const)[i % 4] })));
    expect(again.statuses.every((s) => s === 200)).toBe(true);
    const put = await stack.api.deps.queues.payments.getJobs(['delayed']);
    expect(put.filter((j) => j.data?.merchantUid === a.merchant_uid)).toHaveLength(1);
    await paymentsDrained();
    // Still asked once: a webhook is always followed by a lookup.
    expect(proxy.lookups(imp)).toBe(calls + 1);
    expect(await deferred('unknown_payment')).toBeGreaterThanOrEqual(deferredBefore + 29);
    // One field, expiring.
    const key = eventKeys(id).webhooks(a.merchant_uid);
    expect(await stack.redis.hlen(key)).toBe(1);
    expect(await stack.redis.ttl(key)).toBeGreaterThan(0);
    expect((await detail(a.merchant_uid)).status).toBe('pending');
  });

  it('naming a paid payment with every status in turn: no more lookups than the bound, and the order stays paid', async () => {
    const id = await event({ seats: 1 });
    const a = await order(id, { buyer_id: 'a', seats: ['S-1-1'] });
    const paid = await sim.pay({ merchant_uid: a.merchant_uid, amount: a.amount, confirm_url: confirmUrl(), notice_url: noticeUrl(), outcome: 'paid' });
    await orderIs(a.merchant_uid, 'paid');
    await paymentsDrained();
    const imp = paid.payment.imp_uid;
    const before = proxy.lookups(imp);
    const listedBefore = proxy.listed(imp);
    const rateBefore = await deferred('rate');
    const statuses = ['ready', 'failed', 'cancelled', 'paid'] as const;
    const f = await flood(Array.from({ length: 60 }, (_, i) => ({ imp_uid: imp, merchant_uid: a.merchant_uid, status: statuses[i % 4] })));
    expect(f.statuses.every((s) => s === 200)).toBe(true);
    await paymentsDrained();
    expect(proxy.lookups(imp) - before).toBeLessThanOrEqual(bound(f.ms));
    expect(proxy.listed(imp) - listedBefore).toBeLessThanOrEqual(bound(f.ms));
    expect(await deferred('rate')).toBeGreaterThan(rateBefore);
    const d = await detail(a.merchant_uid);
    expect(d.status).toBe('paid');
    expect(d.tickets).toEqual([expect.objectContaining({ seat: 'S-1-1' })]);
    expect(sim.ledger({ merchant_uid: a.merchant_uid }).cancels).toEqual([]);
  });

  it('naming made-up payments of one order: at most PAYMENTS_PER_ORDER_MAX lookups of them, and the rest paced as one', async () => {
    const id = await event({ seats: 1 });
    const a = await order(id, { buyer_id: 'a', seats: ['S-1-1'] });
    const imps = Array.from({ length: 100 }, () => impUid());
    const f = await flood(imps.map((imp) => ({ imp_uid: imp, merchant_uid: a.merchant_uid, status: 'paid' })));
    expect(f.statuses.every((s) => s === 200)).toBe(true);
    await paymentsDrained();
    // The order's other payments share one paced generation: the worker asks PortOne for all of them.
    expect(proxy.findAll(a.merchant_uid)).toBeGreaterThanOrEqual(1);
    expect(proxy.findAll(a.merchant_uid)).toBeLessThanOrEqual(bound(f.ms));
    // One lookup each, and one recheck each of those PortOne said it does not know.
    expect(imps.reduce((n, imp) => n + proxy.lookups(imp), 0)).toBeLessThanOrEqual(2 * PAYMENTS_PER_ORDER);
    expect(imps.reduce((n, imp) => n + proxy.listed(imp), 0)).toBeLessThanOrEqual(2 * PAYMENTS_PER_ORDER);
    expect(await stack.redis.hlen(eventKeys(id).webhooks(a.merchant_uid))).toBeLessThanOrEqual(PAYMENTS_PER_ORDER + 1);
  });
});

describe('the bound never hides the truth', () => {
  it('a payment PortOne did not know during a flood of hints for it, paid afterwards without confirm, is settled with tickets', async () => {
    const id = await event({ seats: 1 });
    const a = await order(id, { buyer_id: 'a', seats: ['S-1-1'] });
    // A PG without confirm: the paid webhook is the only news of it.
    const paying = sim.pay({ merchant_uid: a.merchant_uid, amount: a.amount, notice_url: noticeUrl(), outcome: 'paid', buyer_delay_ms: 1_500 });
    const imp = (await waitFor(async () => sim.ledger({ merchant_uid: a.merchant_uid }).payments[0], 5_000, 'the payment to open')).imp_uid;
    proxy.hide(imp);
    const f = await flood(Array.from({ length: 60 }, () => ({ imp_uid: imp, merchant_uid: a.merchant_uid, status: 'paid' })));
    expect(f.statuses.every((s) => s === 200)).toBe(true);
    // The workers asked, and PortOne did not know it; then it does.
    await waitFor(async () => {
      if (proxy.lookups(imp) === 0) return false;
      const c = await stack.api.deps.queues.payments.getJobCounts('waiting', 'active');
      return (c.waiting ?? 0) + (c.active ?? 0) === 0;
    }, 10_000, 'PortOne to be asked about the payment');
    proxy.show(imp);
    const result = await paying;
    expect(result.payment.status).toBe('paid');
    const d = await orderIs(a.merchant_uid, 'paid', 30_000);
    expect(d.tickets).toEqual([expect.objectContaining({ seat: 'S-1-1' })]);
    expect(d.payments).toEqual([expect.objectContaining({ imp_uid: imp, status: 'paid' })]);
    expect(sim.ledger({ merchant_uid: a.merchant_uid }).cancels).toEqual([]);
    await paymentsDrained();
    expect(proxy.lookups(imp)).toBeLessThanOrEqual(bound(f.ms) + 2);
  });

  it('a payment without confirm whose only webhook found PortOne not showing it yet is looked up again and ticketed', async () => {
    const id = await event({ seats: 1 });
    const a = await order(id, { buyer_id: 'a', seats: ['S-1-1'] });
    // A PG without confirm, its webhook not sent by the simulator: the one below is its only news.
    const paid = await sim.pay({ merchant_uid: a.merchant_uid, amount: a.amount, outcome: 'paid' });
    const imp = paid.payment.imp_uid;
    proxy.hide(imp);
    expect((await webhook({ imp_uid: imp, merchant_uid: a.merchant_uid, status: 'paid' })).status).toBe(200);
    await waitFor(async () => {
      if (proxy.lookups(imp) === 0) return false;
      const c = await stack.api.deps.queues.payments.getJobCounts('waiting', 'active');
      return (c.waiting ?? 0) + (c.active ?? 0) === 0;
    }, 10_000, 'PortOne to be asked about the payment');
    expect((await detail(a.merchant_uid)).status).toBe('pending');
    // PortOne shows it now; no other webhook comes.
    proxy.show(imp);
    const d = await orderIs(a.merchant_uid, 'paid', 20_000);
    expect(d.tickets).toEqual([expect.objectContaining({ seat: 'S-1-1' })]);
    expect(sim.ledger({ merchant_uid: a.merchant_uid }).cancels).toEqual([]);
    expect(proxy.lookups(imp)).toBe(2);
  });

  it('a flood of "paid" while the buyer is still paying does not delay the sale past the pace', async () => {
    const id = await event({ seats: 1 });
    const a = await order(id, { buyer_id: 'a', seats: ['S-1-1'] });
    const paying = sim.pay({ merchant_uid: a.merchant_uid, amount: a.amount, notice_url: noticeUrl(), outcome: 'paid', buyer_delay_ms: 1_500 });
    const imp = (await waitFor(async () => sim.ledger({ merchant_uid: a.merchant_uid }).payments[0], 5_000, 'the payment to open')).imp_uid;
    await flood(Array.from({ length: 60 }, () => ({ imp_uid: imp, merchant_uid: a.merchant_uid, status: 'paid' })));
    await paying;
    const paidAt = Date.now();
    const d = await orderIs(a.merchant_uid, 'paid', 20_000);
    expect(d.tickets).toEqual([expect.objectContaining({ seat: 'S-1-1' })]);
    // Settled within one interval of the pace (plus the work), not a window per webhook.
    expect(Date.now() - paidAt).toBeLessThan(INTERVAL_MS + 5_000);
  });
});
