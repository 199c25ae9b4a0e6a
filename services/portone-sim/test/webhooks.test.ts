/**
 * Webhooks as PortOne V1 sends them, and the faults merchants must survive: lost, duplicated,
 * delayed, reordered, form-encoded, retried on 0/5xx, sent before the buyer returns.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startSimulator, type Simulator } from '../src/index.ts';
import { rest, simCall, startEndpoint, token, type Endpoint, type Received } from './helpers.ts';

let sim: Simulator;
let uid = 0;
const order = (): string => `wh-${process.pid}-${++uid}`;

beforeAll(async () => {
  sim = await startSimulator();
});
afterAll(async () => {
  await sim.close();
});

/** A webhook receiver of its own per test, so counts never mix. */
async function withReceiver<T>(fn: (hooks: Endpoint) => Promise<T>, answer?: (req: Received, i: number) => { status?: number }): Promise<T> {
  const hooks = await startEndpoint(answer);
  try {
    return await fn(hooks);
  } finally {
    // Let this test's webhooks finish before the receiver goes, so no retry leaks into the next test.
    await sim.settled();
    await hooks.close();
  }
}

const statuses = (hooks: Endpoint): string[] => hooks.requests.map((r) => (JSON.parse(r.body) as { status: string }).status);

it('delivers one JSON webhook {imp_uid, merchant_uid, status: "paid"} to notice_url', async () => {
  await withReceiver(async (hooks) => {
    const merchantUid = order();
    const { payment } = await sim.pay({ merchant_uid: merchantUid, amount: 1000, notice_url: hooks.url });
    const [req] = await hooks.waitFor(1);
    expect(req?.headers['content-type']).toBe('application/json');
    expect(JSON.parse(req?.body ?? '')).toEqual({ imp_uid: payment.imp_uid, merchant_uid: merchantUid, status: 'paid' });
    await sim.settled();
    expect(hooks.requests).toHaveLength(1);
    expect(sim.ledger({ imp_uid: payment.imp_uid }).webhooks).toEqual([
      expect.objectContaining({ status: 'paid', delivered: true, http_status: 200, attempt: 1, copy: 0, lost: false }),
    ]);
  });
});

it('webhook_format "form" sends application/x-www-form-urlencoded', async () => {
  await withReceiver(async (hooks) => {
    const { payment } = await sim.pay({ merchant_uid: order(), amount: 1000, notice_url: hooks.url, faults: { webhook_format: 'form' } });
    const [req] = await hooks.waitFor(1);
    expect(req?.headers['content-type']).toBe('application/x-www-form-urlencoded');
    const form = new URLSearchParams(req?.body);
    expect(form.get('imp_uid')).toBe(payment.imp_uid);
    expect(form.get('status')).toBe('paid');
  });
});

it('webhook_loss 1 never sends the webhook, and the ledger says so', async () => {
  await withReceiver(async (hooks) => {
    const { payment } = await sim.pay({ merchant_uid: order(), amount: 1000, notice_url: hooks.url, faults: { webhook_loss: 1 } });
    await sim.settled();
    expect(hooks.requests).toHaveLength(0);
    expect(sim.ledger({ imp_uid: payment.imp_uid }).webhooks).toEqual([
      expect.objectContaining({ delivered: false, lost: true, http_status: null, attempt: 0 }),
    ]);
  });
});

it('a per-request fault overrides the global one', async () => {
  const other = await startSimulator({ faults: { webhook_loss: 1 } });
  try {
    await withReceiver(async (hooks) => {
      await other.pay({ merchant_uid: order(), amount: 1000, notice_url: hooks.url });
      await other.pay({ merchant_uid: order(), amount: 1000, notice_url: hooks.url, faults: { webhook_loss: 0 } });
      await other.settled();
      expect(hooks.requests).toHaveLength(1);
    });
  } finally {
    await other.close();
  }
});

it('webhook_duplicates sends extra identical copies', async () => {
  await withReceiver(async (hooks) => {
    const { payment } = await sim.pay({ merchant_uid: order(), amount: 1000, notice_url: hooks.url, faults: { webhook_duplicates: 2 } });
    await hooks.waitFor(3);
    await sim.settled();
    expect(hooks.requests).toHaveLength(3);
    expect(new Set(hooks.requests.map((r) => r.body)).size).toBe(1);
    expect(sim.ledger({ imp_uid: payment.imp_uid }).webhooks.map((w) => w.copy).sort()).toEqual([0, 1, 2]);
  });
});

it('webhook_delay_ms delays the webhook past the buyer\'s return', async () => {
  await withReceiver(async (hooks) => {
    await sim.pay({ merchant_uid: order(), amount: 1000, notice_url: hooks.url, faults: { webhook_delay_ms: 300 } });
    const returned = performance.now();
    expect(hooks.requests).toHaveLength(0);
    const [req] = await hooks.waitFor(1);
    expect((req?.at ?? 0) - returned).toBeGreaterThanOrEqual(250);
  });
});

it('webhook_before_return delivers the webhook before the payment window answers', async () => {
  await withReceiver(async (hooks) => {
    const res = await simCall(sim, 'POST', '/sim/v1/payments', {
      merchant_uid: order(),
      amount: 1000,
      notice_url: hooks.url,
      faults: { webhook_before_return: true, webhook_delay_ms: 100 },
    });
    expect(res.status).toBe(200);
    expect(hooks.requests).toHaveLength(1);
  });
});

it('webhook_reorder holds a webhook back and delivers it after the next one of the same payment', async () => {
  await withReceiver(async (hooks) => {
    const merchantUid = order();
    const { payment } = await sim.pay({ merchant_uid: merchantUid, amount: 1000, notice_url: hooks.url, faults: { webhook_reorder: true } });
    // Everything else settled, the paid webhook is still held back (not sent, and pending).
    await sim.settled();
    expect(hooks.requests).toHaveLength(0);
    expect(sim.pending(merchantUid)).toBe(1);
    // A console cancel sends `cancelled`: the merchant gets it first, then the stale `paid`.
    const res = await simCall(sim, 'POST', `/sim/v1/payments/${payment.imp_uid}/cancel`, { reason: '콘솔 취소' });
    expect(res.status).toBe(200);
    await hooks.waitFor(2);
    expect(statuses(hooks)).toEqual(['cancelled', 'paid']);
    expect(JSON.parse(hooks.requests[0]?.body ?? '{}')).toHaveProperty('cancellation_id');
  });
});

it('webhook_reorder releases a held webhook after webhook_reorder_max_hold_ms when nothing follows', async () => {
  await withReceiver(async (hooks) => {
    await sim.pay({
      merchant_uid: order(),
      amount: 1000,
      notice_url: hooks.url,
      faults: { webhook_reorder: true, webhook_reorder_max_hold_ms: 150 },
    });
    expect(hooks.requests).toHaveLength(0);
    await hooks.waitFor(1, 2000);
    expect(statuses(hooks)).toEqual(['paid']);
  });
});

it('retries a webhook answered 5xx or not answered, up to webhook_retries, webhook_retry_ms apart', async () => {
  await withReceiver(
    async (hooks) => {
      const { payment } = await sim.pay({ merchant_uid: order(), amount: 1000, notice_url: hooks.url, faults: { webhook_retry_ms: 50 } });
      await sim.settled();
      expect(hooks.requests).toHaveLength(3);
      const entries = sim.ledger({ imp_uid: payment.imp_uid }).webhooks;
      expect(entries.map((w) => [w.attempt, w.http_status, w.delivered])).toEqual([
        [1, 503, false],
        [2, 500, false],
        [3, 200, true],
      ]);
      expect((hooks.requests[1]?.at ?? 0) - (hooks.requests[0]?.at ?? 0)).toBeGreaterThanOrEqual(40);
    },
    (_req, i) => ({ status: i === 0 ? 503 : i === 1 ? 500 : 200 }),
  );
});

it('gives up after webhook_retries and does not retry a 4xx', async () => {
  await withReceiver(
    async (hooks) => {
      const { payment } = await sim.pay({
        merchant_uid: order(),
        amount: 1000,
        notice_url: hooks.url,
        faults: { webhook_retry_ms: 20, webhook_retries: 2 },
      });
      await sim.settled();
      expect(sim.ledger({ imp_uid: payment.imp_uid }).webhooks.map((w) => w.attempt)).toEqual([1, 2, 3]);
    },
    () => ({ status: 502 }),
  );
  await withReceiver(
    async (hooks) => {
      await sim.pay({ merchant_uid: order(), amount: 1000, notice_url: hooks.url, faults: { webhook_retry_ms: 20 } });
      await sim.settled();
      expect(hooks.requests).toHaveLength(1);
    },
    () => ({ status: 400 }),
  );
});

it('retries when the notice URL does not answer at all (status 0)', async () => {
  const gone = await startEndpoint();
  const url = gone.url;
  await gone.close();
  const { payment } = await sim.pay({ merchant_uid: order(), amount: 1000, notice_url: url, faults: { webhook_retry_ms: 10, webhook_retries: 1 } });
  await sim.settled();
  expect(sim.ledger({ imp_uid: payment.imp_uid }).webhooks.map((w) => [w.attempt, w.http_status])).toEqual([
    [1, 0],
    [2, 0],
  ]);
});

it('re-sends a webhook with a lying status and body, so merchants must re-fetch', async () => {
  await withReceiver(async (hooks) => {
    const { payment } = await sim.pay({ merchant_uid: order(), amount: 1000, notice_url: hooks.url, outcome: 'failed' });
    const res = await simCall(sim, 'POST', `/sim/v1/payments/${payment.imp_uid}/webhook`, { status: 'paid', body: { amount: 1 } });
    expect(res.status).toBe(200);
    expect(hooks.requests).toHaveLength(1);
    expect(JSON.parse(hooks.requests[0]?.body ?? '{}')).toMatchObject({ imp_uid: payment.imp_uid, status: 'paid', amount: 1 });
    expect(sim.getPayment(payment.imp_uid)?.status).toBe('failed');
    await sim.sendWebhook(payment.imp_uid);
    expect(statuses(hooks)).toEqual(['paid', 'failed']);
  });
});

it('a console cancel refunds and sends a cancelled webhook', async () => {
  await withReceiver(async (hooks) => {
    const { payment } = await sim.pay({ merchant_uid: order(), amount: 1000, notice_url: hooks.url });
    await hooks.waitFor(1);
    const cancelled = sim.cancelPayment(payment.imp_uid, { amount: 1000 });
    expect(cancelled).toMatchObject({ status: 'cancelled', cancel_amount: 1000 });
    await hooks.waitFor(2);
    expect(statuses(hooks)).toEqual(['paid', 'cancelled']);
    expect(sim.ledger({ imp_uid: payment.imp_uid }).cancels).toEqual([expect.objectContaining({ source: 'console', ok: true, amount: 1000 })]);
  });
});

it('the cancel API sends no webhook unless enable_webhook is true', async () => {
  await withReceiver(async (hooks) => {
    const { payment } = await sim.pay({ merchant_uid: order(), amount: 1000, notice_url: hooks.url });
    await hooks.waitFor(1);
    const t = await token(sim);
    const quiet = await rest(sim, 'POST', '/payments/cancel', { token: t, body: { imp_uid: payment.imp_uid, amount: 400, checksum: 1000, reason: 'x' } });
    expect(quiet.body.code).toBe(0);
    await sim.settled();
    expect(statuses(hooks)).toEqual(['paid']);
    const loud = await rest(sim, 'POST', '/payments/cancel', {
      token: t,
      body: { imp_uid: payment.imp_uid, checksum: 600, reason: 'x', enable_webhook: true },
    });
    expect(loud.body.code).toBe(0);
    await hooks.waitFor(2);
    expect(statuses(hooks)).toEqual(['paid', 'cancelled']);
  });
});
