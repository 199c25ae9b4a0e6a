/**
 * The payment window: the confirm call PortOne makes to the merchant, what its answer (or silence)
 * does to the payment, and the PG outcomes that follow an approval.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSimulator, type Simulator } from '../src/index.ts';
import { rest, simCall, startEndpoint, token, type Endpoint } from './helpers.ts';

let sim: Simulator;
let uid = 0;
const order = (): string => `pw-${process.pid}-${++uid}`;

beforeAll(async () => {
  sim = await startSimulator();
});
afterAll(async () => {
  await sim.close();
});

describe('confirm', () => {
  let approve: Endpoint;
  let refuse: Endpoint;
  let crash: Endpoint;
  let hooks: Endpoint;
  beforeAll(async () => {
    approve = await startEndpoint(() => ({ status: 200, body: { approved: true } }));
    refuse = await startEndpoint(() => ({ status: 409, body: { code: 'SOLD_OUT', reason: '선택하신 좌석이 이미 판매되었습니다' } }));
    crash = await startEndpoint(() => ({ status: 500, body: 'Internal Server Error' }));
    hooks = await startEndpoint();
  });
  afterAll(async () => {
    // Let webhooks land before their receiver goes away, or they would be retried a minute later.
    await sim.settled();
    await Promise.all([approve.close(), refuse.close(), crash.close(), hooks.close()]);
  });

  it('POSTs {imp_uid, merchant_uid, amount} as JSON to confirm_url, then pays on 200', async () => {
    const merchantUid = order();
    const res = await simCall(sim, 'POST', '/sim/v1/payments', {
      merchant_uid: merchantUid,
      amount: 150000,
      confirm_url: approve.url,
      notice_url: hooks.url,
      outcome: 'paid',
    });
    expect(res.status).toBe(200);
    const result = res.body as { payment: { imp_uid: string; status: string }; confirm: { status: number; body: unknown } };
    expect(result.payment.status).toBe('paid');
    expect(result.confirm).toMatchObject({ status: 200, body: { approved: true }, timed_out: false });
    const call = approve.requests.find((r) => r.body.includes(merchantUid));
    expect(call?.method).toBe('POST');
    expect(call?.headers['content-type']).toContain('application/json');
    expect(JSON.parse(call?.body ?? '{}')).toEqual({ imp_uid: result.payment.imp_uid, merchant_uid: merchantUid, amount: 150000 });
    expect(sim.ledger({ merchant_uid: merchantUid }).confirms).toEqual([
      expect.objectContaining({ imp_uid: result.payment.imp_uid, http_status: 200, reason: null, timed_out: false }),
    ]);
  });

  it('stops the payment on a non-200 with the merchant\'s reason as fail_reason, and sends no webhook', async () => {
    const { payment, confirm } = await sim.pay({ merchant_uid: order(), amount: 1000, confirm_url: refuse.url, notice_url: hooks.url });
    expect(confirm?.status).toBe(409);
    expect(payment.status).toBe('failed');
    expect(payment.fail_reason).toBe('고객사 요청에 의해 결제를 중단합니다. (상세사유 : 선택하신 좌석이 이미 판매되었습니다)');
    expect(payment.failed_at).toBeGreaterThan(0);
    expect(payment.paid_at).toBe(0);
    await sim.settled();
    expect(hooks.requests.filter((r) => r.body.includes(payment.imp_uid))).toEqual([]);
    expect(sim.ledger({ imp_uid: payment.imp_uid }).confirms[0]).toMatchObject({ http_status: 409, reason: '선택하신 좌석이 이미 판매되었습니다' });
  });

  it('uses 알 수 없음 when the refusal carries no JSON reason', async () => {
    const { payment } = await sim.pay({ merchant_uid: order(), amount: 1000, confirm_url: crash.url });
    expect(payment.status).toBe('failed');
    expect(payment.fail_reason).toBe('고객사 요청에 의해 결제를 중단합니다. (상세사유 : 알 수 없음)');
  });

  it('stops the payment when confirm answers after confirm_timeout_ms, even with a 200', async () => {
    const slow = await startEndpoint(() => ({ status: 200, body: { approved: true }, delayMs: 800 }));
    try {
      const started = performance.now();
      const { payment, confirm } = await sim.pay({
        merchant_uid: order(),
        amount: 1000,
        confirm_url: slow.url,
        notice_url: hooks.url,
        faults: { confirm_timeout_ms: 150 },
      });
      const elapsed = performance.now() - started;
      expect(confirm).toMatchObject({ status: 0, timed_out: true });
      expect(elapsed).toBeLessThan(700);
      expect(payment.status).toBe('failed');
      expect(payment.fail_reason).toBe('고객사 요청에 의해 결제를 중단합니다. (상세사유 : 알 수 없음)');
      expect(sim.ledger({ imp_uid: payment.imp_uid }).confirms[0]).toMatchObject({ http_status: 0, timed_out: true });
      // The late 200 changes nothing: the payment stays failed and no webhook goes out.
      await slow.waitAnswered(1);
      await sim.settled();
      expect(sim.getPayment(payment.imp_uid)?.status).toBe('failed');
      expect(sim.ledger({ imp_uid: payment.imp_uid }).webhooks).toEqual([]);
    } finally {
      await slow.close();
    }
  });

  it('stops the payment when confirm_url refuses connections', async () => {
    const gone = await startEndpoint();
    const url = gone.url;
    await gone.close();
    const { payment, confirm } = await sim.pay({ merchant_uid: order(), amount: 1000, confirm_url: url });
    expect(confirm).toMatchObject({ status: 0, timed_out: false });
    expect(payment.status).toBe('failed');
  });

  it('can drop amount from the confirm body (old documentation), and pays without confirm_url', async () => {
    const merchantUid = order();
    await sim.pay({ merchant_uid: merchantUid, amount: 1000, confirm_url: approve.url, confirm_body: { amount: null, status: 'ready' } });
    const call = approve.requests.find((r) => r.body.includes(merchantUid));
    const sent = JSON.parse(call?.body ?? '{}') as Record<string, unknown>;
    expect(sent).not.toHaveProperty('amount');
    expect(sent['status']).toBe('ready');

    const { payment, confirm } = await sim.pay({ merchant_uid: order(), amount: 1000, notice_url: hooks.url });
    expect(confirm).toBeNull();
    expect(payment.status).toBe('paid');
  });
});

describe('outcomes after an approval', () => {
  let approve: Endpoint;
  let hooks: Endpoint;
  beforeAll(async () => {
    approve = await startEndpoint(() => ({ status: 200, body: {} }));
    hooks = await startEndpoint();
  });
  afterAll(async () => {
    await sim.settled();
    await Promise.all([approve.close(), hooks.close()]);
  });

  const hooksFor = (impUid: string): string[] =>
    hooks.requests.filter((r) => r.body.includes(impUid)).map((r) => (JSON.parse(r.body) as { status: string }).status);

  it('failed: a PG fail_reason and no webhook; abandoned: stays ready and no webhook', async () => {
    const failed = await sim.pay({ merchant_uid: order(), amount: 1000, confirm_url: approve.url, notice_url: hooks.url, outcome: 'failed' });
    const abandoned = await sim.pay({ merchant_uid: order(), amount: 1000, confirm_url: approve.url, notice_url: hooks.url, outcome: 'abandoned' });
    await sim.settled();
    expect(failed.payment.status).toBe('failed');
    expect(failed.payment.fail_reason).not.toContain('고객사 요청');
    expect(abandoned.payment.status).toBe('ready');
    expect(hooksFor(failed.payment.imp_uid)).toEqual([]);
    expect(hooksFor(abandoned.payment.imp_uid)).toEqual([]);
  });

  it('waits buyer_delay_ms after the approval before the PG answers', async () => {
    const started = performance.now();
    const { payment } = await sim.pay({ merchant_uid: order(), amount: 1000, confirm_url: approve.url, buyer_delay_ms: 250 });
    expect(performance.now() - started).toBeGreaterThanOrEqual(240);
    expect(payment.status).toBe('paid');
  });

  it('failed_then_paid_ms: the buyer sees failed, later the payment turns paid with a paid webhook', async () => {
    const { payment } = await sim.pay({
      merchant_uid: order(),
      amount: 1000,
      confirm_url: approve.url,
      notice_url: hooks.url,
      faults: { failed_then_paid_ms: 200 },
    });
    expect(payment.status).toBe('failed');
    expect(payment.fail_reason).toBeTruthy();
    expect(hooksFor(payment.imp_uid)).toEqual([]);

    const t = await token(sim);
    const early = await rest(sim, 'GET', `/payments/${payment.imp_uid}`, { token: t });
    expect(early.body.response?.['status']).toBe('failed');

    await sim.settled();
    const late = await rest(sim, 'GET', `/payments/${payment.imp_uid}`, { token: t });
    expect(late.body.response?.['status']).toBe('paid');
    expect(late.body.response?.['paid_at']).toBeGreaterThan(0);
    expect(hooksFor(payment.imp_uid)).toEqual(['paid']);
  });

  it('setPaymentStatus turns a failed payment paid behind the merchant\'s back (webhook on request)', async () => {
    const { payment } = await sim.pay({ merchant_uid: order(), amount: 1000, confirm_url: approve.url, notice_url: hooks.url, outcome: 'failed' });
    const silent = sim.setPaymentStatus(payment.imp_uid, 'paid');
    expect(silent.status).toBe('paid');
    await sim.settled();
    expect(hooksFor(payment.imp_uid)).toEqual([]);

    const res = await simCall(sim, 'PUT', `/sim/v1/payments/${payment.imp_uid}/status`, { status: 'failed', webhook: true });
    expect(res.status).toBe(200);
    await sim.settled();
    expect(sim.getPayment(payment.imp_uid)?.status).toBe('failed');
    expect(hooksFor(payment.imp_uid)).toEqual(['failed']);
  });

  it('handles a burst of concurrent payment windows', async () => {
    const results = await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        sim.pay({ merchant_uid: order(), amount: 1000 + i, confirm_url: approve.url, notice_url: hooks.url }),
      ),
    );
    await sim.settled();
    expect(results.every((r) => r.payment.status === 'paid')).toBe(true);
    for (const r of results.slice(0, 20)) expect(hooksFor(r.payment.imp_uid)).toEqual(['paid']);
  });
});
