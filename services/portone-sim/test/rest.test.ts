/**
 * The simulator's PortOne V1 REST API against PortOne's documented shapes: envelope everywhere,
 * bearer tokens that expire, payments and their statuses, cancel with checksum, prepare, REST faults.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startSimulator, type Simulator } from '../src/index.ts';
import { isEnvelope, rest, simCall, startEndpoint, token, type Endpoint } from './helpers.ts';

let sim: Simulator;
let accessToken: string;
let uid = 0;
/** merchant_uids unique within the file, so tests sharing the simulator never see each other's orders. */
const order = (): string => `rest-${process.pid}-${++uid}`;

beforeAll(async () => {
  sim = await startSimulator();
  accessToken = await token(sim);
});
afterAll(async () => {
  await sim.close();
});

async function paidPayment(amount = 1000): Promise<string> {
  const { payment } = await sim.pay({ merchant_uid: order(), amount, outcome: 'paid' });
  expect(payment.status).toBe('paid');
  return payment.imp_uid;
}

describe('tokens', () => {
  it('issues a token with expired_at and now in unix seconds', async () => {
    const res = await rest(sim, 'POST', '/users/getToken', { body: { imp_key: 'k', imp_secret: 's' } });
    expect(res.status).toBe(200);
    expect(res.body.code).toBe(0);
    expect(res.body.message).toBeNull();
    const r = res.body.response as { access_token: string; expired_at: number; now: number };
    expect(r.access_token).toMatch(/^[0-9a-f]{40}$/);
    expect(r.expired_at - r.now).toBe(1800);
    expect(Math.abs(r.now - Date.now() / 1000)).toBeLessThan(5);
  });

  it('accepts a form-encoded getToken, as PortOne does', async () => {
    const res = await fetch(`${sim.url}/users/getToken`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'imp_key=k&imp_secret=s',
    });
    const body = (await res.json()) as { code: number; response: { access_token: string } };
    expect(res.status).toBe(200);
    expect(body.code).toBe(0);
    expect(typeof body.response.access_token).toBe('string');
  });

  it('refuses REST calls without a token or with a wrong one, Bearer or bare; takes a right one either way (as PortOne does)', async () => {
    const impUid = await paidPayment();
    for (const headers of [{}, { authorization: 'Bearer nope' }, { authorization: 'nope' }, { authorization: `Basic ${accessToken}` }]) {
      const res = await fetch(`${sim.url}/payments/${impUid}`, { headers });
      const body = await res.json();
      expect(res.status).toBe(401);
      expect(isEnvelope(body)).toBe(true);
      expect((body as { code: number }).code).toBe(-1);
    }
    const ok = await rest(sim, 'GET', `/payments/${impUid}`, { token: accessToken });
    expect(ok.status).toBe(200);
    const bare = await fetch(`${sim.url}/payments/${impUid}`, { headers: { authorization: accessToken } });
    expect(bare.status).toBe(200);
  });

  it('expires tokens after tokenTtlSeconds', async () => {
    // The simulator's time, moved forward by the test instead of waited out.
    let now = Date.now();
    const shortLived = await startSimulator({ tokenTtlSeconds: 1, clock: { now: () => now } });
    try {
      const t = await token(shortLived);
      now += 999;
      const before = await rest(shortLived, 'GET', '/payments/imp_000000000001', { token: t });
      expect(before.status).toBe(404); // authorized: only the payment is unknown
      now += 1;
      const after = await rest(shortLived, 'GET', '/payments/imp_000000000001', { token: t });
      expect(after.status).toBe(401);
      expect(after.body.code).toBe(-1);
    } finally {
      await shortLived.close();
    }
  });

  it('checks imp_key and imp_secret when configured', async () => {
    const strict = await startSimulator({ impKey: 'right-key', impSecret: 'right-secret' });
    try {
      const wrong = await rest(strict, 'POST', '/users/getToken', { body: { imp_key: 'right-key', imp_secret: 'wrong' } });
      expect(wrong.status).toBe(401);
      expect(wrong.body.code).toBe(-1);
      expect(wrong.body.message).toContain('imp_key');
      expect(wrong.body.response).toBeNull();
      const right = await rest(strict, 'POST', '/users/getToken', { body: { imp_key: 'right-key', imp_secret: 'right-secret' } });
      expect(right.body.code).toBe(0);
    } finally {
      await strict.close();
    }
  });
});

describe('payments', () => {
  it('answers every REST outcome with the envelope', async () => {
    const impUid = await paidPayment();
    const answers = [
      await rest(sim, 'GET', `/payments/${impUid}`, { token: accessToken }),
      await rest(sim, 'GET', '/payments/imp_999999999999', { token: accessToken }),
      await rest(sim, 'GET', '/payments/find/no-such-order', { token: accessToken }),
      await rest(sim, 'POST', '/payments/cancel', { token: accessToken, body: { imp_uid: impUid, checksum: 1, reason: 'x' } }),
      await rest(sim, 'GET', '/no/such/route', { token: accessToken }),
      await rest(sim, 'POST', '/payments/prepare', { token: accessToken, body: { merchant_uid: order() } }),
    ];
    const raw = await fetch(`${sim.url}/payments/cancel`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${accessToken}` },
      body: '{not json',
    });
    expect(raw.status).toBe(400);
    expect(isEnvelope(await raw.json())).toBe(true);
    expect(answers.map((a) => a.status)).toEqual([200, 404, 404, 200, 404, 400]);
    for (const a of answers) expect(isEnvelope(a.body)).toBe(true);
    expect(answers.map((a) => a.body.code)).toEqual([0, 1, 1, 1, -1, -1]);
  });

  it('reports an unknown imp_uid with 404, code 1 and PortOne\'s message', async () => {
    const res = await rest(sim, 'GET', '/payments/imp_000000000000', { token: accessToken });
    expect(res.status).toBe(404);
    expect(res.body).toEqual({ code: 1, message: '존재하지 않는 결제정보입니다.', response: null });
  });

  it('shows ready, paid and failed payments with V1 fields', async () => {
    const ready = await sim.pay({ merchant_uid: order(), amount: 500, outcome: 'abandoned' });
    const paid = await sim.pay({ merchant_uid: order(), amount: 700, outcome: 'paid' });
    const failed = await sim.pay({ merchant_uid: order(), amount: 900, outcome: 'failed' });
    const fetched = await Promise.all(
      [ready, paid, failed].map((r) => rest(sim, 'GET', `/payments/${r.payment.imp_uid}`, { token: accessToken })),
    );
    const [r, p, f] = fetched.map((a) => a.body.response as Record<string, unknown>);
    expect(r).toMatchObject({ status: 'ready', amount: 500, cancel_amount: 0, currency: 'KRW', paid_at: 0, failed_at: 0, fail_reason: null });
    expect(p).toMatchObject({ status: 'paid', amount: 700, fail_reason: null, failed_at: 0, pay_method: 'card' });
    expect(p?.['paid_at']).toBeGreaterThan(0);
    expect(f).toMatchObject({ status: 'failed', paid_at: 0 });
    expect(f?.['failed_at']).toBeGreaterThan(0);
    expect(typeof f?.['fail_reason']).toBe('string');
    expect(r?.['imp_uid']).toMatch(/^imp_\d{12}$/);
  });

  it('issues unique imp_uids of the form imp_ + 12 digits', async () => {
    const results = await Promise.all(Array.from({ length: 300 }, () => sim.pay({ merchant_uid: order(), amount: 100, outcome: 'abandoned' })));
    const uids = results.map((r) => r.payment.imp_uid);
    for (const u of uids) expect(u).toMatch(/^imp_\d{12}$/);
    expect(new Set(uids).size).toBe(uids.length);
  });

  it('finds the latest payment of a merchant_uid, optionally by status', async () => {
    const merchantUid = order();
    const first = await sim.pay({ merchant_uid: merchantUid, amount: 1000, outcome: 'failed' });
    const second = await sim.pay({ merchant_uid: merchantUid, amount: 1000, outcome: 'paid' });
    const latest = await rest(sim, 'GET', `/payments/find/${merchantUid}`, { token: accessToken });
    expect(latest.body.response?.['imp_uid']).toBe(second.payment.imp_uid);
    const failed = await rest(sim, 'GET', `/payments/find/${merchantUid}/failed`, { token: accessToken });
    expect(failed.body.response?.['imp_uid']).toBe(first.payment.imp_uid);
    const none = await rest(sim, 'GET', `/payments/find/${order()}`, { token: accessToken });
    expect(none.status).toBe(404);
    expect(none.body.code).toBe(1);
  });
});

describe('cancel', () => {
  it('refuses a wrong checksum with code 1 (HTTP 200) and changes nothing', async () => {
    const impUid = await paidPayment(1000);
    const res = await rest(sim, 'POST', '/payments/cancel', {
      token: accessToken,
      body: { imp_uid: impUid, amount: 300, checksum: 999, reason: '재고 없음' },
    });
    expect(res.status).toBe(200);
    expect(res.body.code).toBe(1);
    expect(res.body.message).toContain('checksum');
    expect(res.body.response).toBeNull();
    const after = await rest(sim, 'GET', `/payments/${impUid}`, { token: accessToken });
    expect(after.body.response).toMatchObject({ status: 'paid', cancel_amount: 0, cancelled_at: 0 });
    expect(sim.ledger({ imp_uid: impUid }).cancels).toEqual([
      expect.objectContaining({ imp_uid: impUid, amount: 300, checksum: 999, ok: false, source: 'api' }),
    ]);
  });

  it('cancels partially, then fully, accumulating cancel_amount', async () => {
    const impUid = await paidPayment(1000);
    const partial = await rest(sim, 'POST', '/payments/cancel', {
      token: accessToken,
      body: { imp_uid: impUid, amount: 300, checksum: 1000, reason: '부분 환불' },
    });
    expect(partial.body.code).toBe(0);
    expect(partial.body.response).toMatchObject({ status: 'paid', cancel_amount: 300, cancelled_at: 0 });

    // amount omitted = the whole remaining balance; the checksum is that balance.
    const full = await rest(sim, 'POST', '/payments/cancel', {
      token: accessToken,
      body: { imp_uid: impUid, checksum: 700, reason: '전액 환불' },
    });
    expect(full.body.code).toBe(0);
    expect(full.body.response).toMatchObject({ status: 'cancelled', cancel_amount: 1000 });
    expect(full.body.response?.['cancelled_at']).toBeGreaterThan(0);
    expect(full.body.response?.['cancel_history']).toHaveLength(2);

    const again = await rest(sim, 'POST', '/payments/cancel', { token: accessToken, body: { imp_uid: impUid, reason: 'x' } });
    expect(again.body.code).toBe(1);
    expect(again.body.message).toBe('이미 전액취소된 주문입니다.');
    const okCancels = sim.ledger({ imp_uid: impUid }).cancels.filter((c) => c.ok);
    expect(okCancels.map((c) => c.amount)).toEqual([300, 700]);
  });

  it('refuses to cancel more than the balance, an unpaid payment, or an unknown one', async () => {
    const impUid = await paidPayment(1000);
    const tooMuch = await rest(sim, 'POST', '/payments/cancel', { token: accessToken, body: { imp_uid: impUid, amount: 1001, reason: 'x' } });
    expect(tooMuch.body.code).toBe(1);
    const { payment: ready } = await sim.pay({ merchant_uid: order(), amount: 1000, outcome: 'abandoned' });
    const unpaid = await rest(sim, 'POST', '/payments/cancel', { token: accessToken, body: { imp_uid: ready.imp_uid, reason: 'x' } });
    expect(unpaid.body.code).toBe(1);
    const unknown = await rest(sim, 'POST', '/payments/cancel', { token: accessToken, body: { imp_uid: 'imp_000000000000', reason: 'x' } });
    expect(unknown.body.code).toBe(1);
    expect(unknown.body.message).toBe('취소할 결제건이 존재하지 않습니다.');
    expect(sim.getPayment(impUid)?.cancel_amount).toBe(0);
    expect(sim.getPayment(ready.imp_uid)?.status).toBe('ready');
  });

  it('cancels by merchant_uid alone and refuses a merchant_uid that does not match the imp_uid', async () => {
    const { payment } = await sim.pay({ merchant_uid: order(), amount: 400, outcome: 'paid' });
    const mismatch = await rest(sim, 'POST', '/payments/cancel', {
      token: accessToken,
      body: { imp_uid: payment.imp_uid, merchant_uid: 'someone-else', reason: 'x' },
    });
    expect(mismatch.body.code).toBe(1);
    const byOrder = await rest(sim, 'POST', '/payments/cancel', {
      token: accessToken,
      body: { merchant_uid: payment.merchant_uid, checksum: 400, reason: 'x' },
    });
    expect(byOrder.body.code).toBe(0);
    expect(byOrder.body.response).toMatchObject({ imp_uid: payment.imp_uid, status: 'cancelled' });
  });
});

describe('prepare', () => {
  let confirm: Endpoint;
  beforeAll(async () => {
    confirm = await startEndpoint(() => ({ status: 200, body: {} }));
  });
  afterAll(async () => {
    await confirm.close();
  });

  it('stops a payment window whose amount differs from the prepared one, before confirm', async () => {
    const merchantUid = order();
    const prepared = await rest(sim, 'POST', '/payments/prepare', { token: accessToken, body: { merchant_uid: merchantUid, amount: 5000 } });
    expect(prepared.body).toEqual({ code: 0, message: null, response: { merchant_uid: merchantUid, amount: 5000 } });
    const calls = confirm.requests.length;

    const tampered = await sim.pay({ merchant_uid: merchantUid, amount: 50, confirm_url: confirm.url });
    expect(tampered.confirm).toBeNull();
    expect(tampered.payment.status).toBe('failed');
    expect(confirm.requests.length).toBe(calls);

    const honest = await sim.pay({ merchant_uid: merchantUid, amount: 5000, confirm_url: confirm.url });
    expect(honest.payment.status).toBe('paid');
    expect(confirm.requests.length).toBe(calls + 1);
  });

  it('refuses to prepare the same merchant_uid twice, and reads a prepared amount back', async () => {
    const merchantUid = order();
    await rest(sim, 'POST', '/payments/prepare', { token: accessToken, body: { merchant_uid: merchantUid, amount: 100 } });
    const again = await rest(sim, 'POST', '/payments/prepare', { token: accessToken, body: { merchant_uid: merchantUid, amount: 200 } });
    expect(again.body.code).toBe(1);
    const read = await rest(sim, 'GET', `/payments/prepare/${merchantUid}`, { token: accessToken });
    expect(read.body.response).toEqual({ merchant_uid: merchantUid, amount: 100 });
  });
});

describe('REST faults', () => {
  let faulty: Simulator;
  beforeAll(async () => {
    faulty = await startSimulator();
  });
  afterEach(() => {
    faulty.setFaults({});
  });
  afterAll(async () => {
    await faulty.close();
  });

  it('rest_down answers 503 with an envelope on every REST route, getToken included', async () => {
    const t = await token(faulty);
    faulty.setFaults({ rest_down: true });
    const down = [
      await rest(faulty, 'POST', '/users/getToken', { body: { imp_key: 'k', imp_secret: 's' } }),
      await rest(faulty, 'GET', '/payments/imp_000000000000', { token: t }),
      await rest(faulty, 'POST', '/payments/cancel', { token: t, body: { imp_uid: 'x', reason: 'x' } }),
    ];
    for (const a of down) {
      expect(a.status).toBe(503);
      expect(isEnvelope(a.body)).toBe(true);
      expect(a.body.code).not.toBe(0);
    }
    // The controls keep working, so a test can lift the fault.
    const lifted = await simCall(faulty, 'PUT', '/sim/faults', {});
    expect(lifted.status).toBe(200);
    expect((await rest(faulty, 'GET', '/payments/imp_000000000000', { token: t })).status).toBe(404);
  });

  it('rest_failure_rate 1 fails every call; rest_latency_ms delays answers', async () => {
    const t = await token(faulty);
    faulty.setFaults({ rest_failure_rate: 1 });
    expect((await rest(faulty, 'GET', '/payments/imp_000000000000', { token: t })).status).toBe(503);
    faulty.setFaults({ rest_latency_ms: 200 });
    const started = performance.now();
    const res = await rest(faulty, 'GET', '/payments/imp_000000000000', { token: t });
    expect(res.status).toBe(404);
    expect(performance.now() - started).toBeGreaterThanOrEqual(190);
  });
});

describe('controls', () => {
  it('validates faults: unknown names and out-of-range values are refused', async () => {
    const other = await startSimulator();
    try {
      const unknown = await simCall(other, 'PUT', '/sim/faults', { webhook_los: 1 });
      expect(unknown.status).toBe(400);
      expect(unknown.body['code']).toBe('INVALID_REQUEST');
      const outOfRange = await simCall(other, 'PUT', '/sim/faults', { rest_failure_rate: 2 });
      expect(outOfRange.status).toBe(400);
      const ok = await simCall(other, 'PUT', '/sim/faults', { rest_latency_ms: 5, webhook_format: 'form' });
      expect(ok.status).toBe(200);
      expect((await simCall(other, 'GET', '/sim/faults')).body).toEqual({ rest_latency_ms: 5, webhook_format: 'form' });
      expect(() => other.setFaults({ webhook_duplicates: -1 })).toThrow(/webhook_duplicates/);
    } finally {
      await other.close();
    }
  });

  it('reset forgets payments, tokens and faults', async () => {
    const other = await startSimulator();
    try {
      const t = await token(other);
      const { payment } = await other.pay({ merchant_uid: order(), amount: 100 });
      other.setFaults({ rest_latency_ms: 1 });
      const res = await simCall(other, 'POST', '/sim/reset');
      expect(res.status).toBe(200);
      expect(other.ledger().payments).toEqual([]);
      expect(other.getFaults()).toEqual({});
      expect((await rest(other, 'GET', `/payments/${payment.imp_uid}`, { token: t })).status).toBe(401);
      expect((await rest(other, 'GET', `/payments/${payment.imp_uid}`, { token: await token(other) })).status).toBe(404);
    } finally {
      await other.close();
    }
  });

  it('serves the ledger over HTTP, filtered by merchant_uid', async () => {
    const merchantUid = order();
    const { payment } = await sim.pay({ merchant_uid: merchantUid, amount: 100 });
    const res = await simCall(sim, 'GET', `/sim/ledger?merchant_uid=${merchantUid}`);
    expect(res.status).toBe(200);
    expect(res.body['payments']).toEqual([expect.objectContaining({ imp_uid: payment.imp_uid, status: 'paid' })]);
    expect(res.body['confirms']).toEqual([]);
    expect(res.body['cancels']).toEqual([]);
  });

  it('refuses an invalid payment window request with 400', async () => {
    const res = await simCall(sim, 'POST', '/sim/v1/payments', { merchant_uid: order(), amount: -5 });
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ code: 'INVALID_REQUEST' });
    const unknown = await simCall(sim, 'POST', '/sim/v1/payments/imp_000000000000/cancel', {});
    expect(unknown.status).toBe(404);
    expect(unknown.body['code']).toBe('PAYMENT_NOT_FOUND');
  });
});

describe('a listener on REST calls (in-process, for fault harnesses)', () => {
  it('sees each call before it is answered, and the answer waits for it; null stops it', async () => {
    const impUid = await paidPayment();
    const seen: string[] = [];
    let release!: () => void;
    const held = new Promise<void>((r) => { release = r; });
    sim.onRestCall((call) => {
      seen.push(`${call.method} ${call.url}`);
      return held;
    });
    let answered = false;
    const lookup = rest(sim, 'GET', `/payments/${impUid}`, { token: accessToken }).then((res) => {
      answered = true;
      return res;
    });
    // Seen, and not answered while the listener's promise is pending.
    const deadline = Date.now() + 5_000;
    while (seen.length === 0 && Date.now() < deadline) await new Promise((r) => setImmediate(r));
    expect(seen).toEqual([`GET /payments/${impUid}`]);
    expect(answered).toBe(false);
    release();
    const res = await lookup;
    expect(res.status).toBe(200);
    expect((res.body.response as { imp_uid: string }).imp_uid).toBe(impUid);
    sim.onRestCall(null);
    expect((await rest(sim, 'GET', `/payments/${impUid}`, { token: accessToken })).status).toBe(200);
    expect(seen).toHaveLength(1);
  });
});
