/**
 * The buyer-facing front door attacked under concurrency (attack round 26B): an admission that ran
 * out, one admission raced by many orders, parallel extends, odd requests, and a waiting-list entry
 * nobody can be offered. The API on real Redis and Postgres, its clock frozen and moved by the test.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { http, eventId, waitFor, FrozenClock } from '@dropgate/testkit';
import { startApiStack, type ApiStack } from './support/api-stack.ts';

let stack: ApiStack;
const clock = new FrozenClock();
beforeAll(async () => { stack = await startApiStack({ label: 'frontdoor', clock, env: { MAX_EVENT_LOOP_DELAY_MS: '60000' } }); });
afterAll(async () => { await stack?.close(); });

const room = (extra: Record<string, unknown> = {}) => ({ mode: 'fixed', admit_per_second: 10, max_active: 10, admission_ttl_seconds: 10, ...extra });

async function makeEvent(extra: Record<string, unknown> = {}, capacity = 100) {
  const id = eventId('fd');
  const res = await http(stack.url, 'POST', '/admin/events', {
    id, name: 'Front door', hold_at: 'order', reservation_ttl_seconds: 60, sale_opens_at: new Date(clock.now()).toISOString(),
    pools: [{ id: 'ga', name: 'GA', capacity, price: 1_000 }], waiting_room: room(), ...extra,
  }, { admin: true });
  expect(res.status, res.text).toBe(201);
  return id;
}

async function call(method: string, path: string, body?: unknown, opts?: Parameters<typeof http>[4]) {
  for (;;) {
    const res = await http(stack.url, method, path, body, opts);
    if (res.status !== 503) return res;
    await new Promise((r) => setTimeout(r, 50));
  }
}
const join = (id: string, buyer: string) => call('POST', `/events/${id}/queue`, { buyer_id: buyer });
const poll = (id: string, token: string) => call('GET', `/events/${id}/queue/${token}`);
const order = (id: string, buyer: string, token?: string, quantity = 1) =>
  call('POST', `/events/${id}/orders`, { buyer_id: buyer, items: [{ pool: 'ga', quantity }], ...(token ? { admission_token: token } : {}) });

async function admit(id: string, buyer: string): Promise<{ queue: string; admission: string }> {
  const queue = (await join(id, buyer)).body.queue_token as string;
  clock.advance(1_000);
  const p = await poll(id, queue);
  expect(p.body.state, p.text).toBe('admitted');
  return { queue, admission: p.body.admission_token as string };
}

describe('waiting room: an admission that expired', () => {
  it('the buyer told "join the queue again" can join again and be admitted again (not locked out of the sale)', async () => {
    const id = await makeEvent();
    const { admission } = await admit(id, 'late-buyer');
    clock.advance(11_000);
    const refused = await order(id, 'late-buyer', admission);
    expect(refused.status).toBe(403);
    expect(refused.body.message).toContain('join the queue again');
    // As told: join the queue again.
    const again = await join(id, 'late-buyer');
    expect(again.status, again.text).toBe(201);
    clock.advance(1_000);
    const p = await poll(id, again.body.queue_token);
    // Waiting, or admitted with a working admission (it answered 'expired' for good before).
    expect(p.body.state, p.text).not.toBe('expired');
    clock.advance(1_000);
    const p2 = p.body.state === 'admitted' ? p : await poll(id, again.body.queue_token);
    expect(p2.body.state, p2.text).toBe('admitted');
    expect((await order(id, 'late-buyer', p2.body.admission_token)).status).toBe(201);
  });
});

describe('one admission, many parallel orders', () => {
  it('max_per_buyer bounds the places one admitted buyer reserves, however many orders race', async () => {
    const id = await makeEvent({ max_per_buyer: 2 });
    const { admission } = await admit(id, 'racer');
    const results = await Promise.all(Array.from({ length: 30 }, () => order(id, 'racer', admission)));
    const made = results.filter((r) => r.status === 201);
    expect(results.filter((r) => r.status >= 500)).toEqual([]);
    expect(made.length).toBe(2);
    const a = (await http(stack.url, 'GET', `/events/${id}`, undefined, { headers: { 'cache-control': 'no-cache' } })).body.availability;
    expect(a.pools[0].held).toBe(2);
  });
});

describe('extend under concurrency', () => {
  it('20 parallel extends of one reservation extend it at most 3 times, never 500', async () => {
    const id = await makeEvent({ waiting_room: undefined });
    const o = await order(id, 'ext');
    expect(o.status, o.text).toBe(201);
    const rs = await Promise.all(Array.from({ length: 20 }, () => call('POST', `/orders/${o.body.merchant_uid}/extend`, undefined, { headers: { authorization: `Bearer ${o.body.order_token}` } })));
    expect(rs.filter((r) => r.status >= 500).map((r) => r.text)).toEqual([]);
    expect(rs.filter((r) => r.status === 200).length).toBe(3);
  });
});

describe('odd requests at the front door', () => {
  it('never answer 5xx', async () => {
    const id = await makeEvent({ waiting_room: undefined, waitlist: { offer_ttl_seconds: 30 }, seat_blocks: [{ section: 'A', rows: 1, seats_per_row: 3, price: 100 }] });
    const o = await order(id, 'odd');
    const uid = o.body.merchant_uid as string;
    const tries: [string, string, unknown, Record<string, string>?][] = [
      ['POST', `/events/${id}/orders`, { buyer_id: 'x', items: [{ pool: '__proto__', quantity: 1 }] }],
      ['POST', `/events/${id}/orders`, { buyer_id: 'x', seats: ['constructor'] }],
      ['POST', `/events/${id}/orders`, { buyer_id: '__proto__', items: [{ pool: 'ga', quantity: 1 }] }],
      ['POST', `/events/${id}/orders`, { buyer_id: 'x', items: [{ pool: 'ga', quantity: 1.5 }] }],
      ['POST', `/events/${id}/orders`, { buyer_id: 'x', items: [{ pool: 'ga', quantity: 1 }], portone_api: 'v2' }],
      ['POST', `/events/${id}/orders`, { buyer_id: 'x', seats: ['A-1-1', 'A-1-1'] }],
      ['POST', `/events/${id}/orders`, { buyer_id: 'x', seats: ['A-1-1'], items: [{ pool: 'ga', quantity: 100 }] }],
      ['POST', `/events/${id}/orders`, { buyer_id: 'x', items: [{ pool: 'ga', quantity: 1 }], admission_token: 'a1~x~1~' }],
      ['POST', `/events/${id}/orders`, { buyer_id: 'x', items: [{ pool: 'ga', quantity: 1 }], buyer_token: 'b1~x~99999999999999~abc' }],
      ['POST', `/events/${id}/orders`, { buyer_id: 'x', items: [{ pool: 'ga', quantity: 1 }], hold_at: 'confirm' }],
      ['POST', `/events/${id}/orders`, [1, 2, 3]],
      ['POST', `/events/${id}/orders`, 'null'],
      ['POST', `/events/${id}/waitlist`, { buyer_id: 'x', items: [{ pool: '__proto__', quantity: 1 }] }],
      ['POST', `/events/${id}/waitlist`, { buyer_id: 'x', seats: ['A-1-1'], items: [{ pool: 'ga', quantity: 9 }] }],
      ['POST', `/events/${id}/waitlist`, { buyer_id: 'y', seats: ['nope'] }],
      ['GET', `/events/${id}/waitlist/w1~x~${'A'.repeat(22)}`, undefined],
      ['GET', `/events/${id}/waitlist/w1~__proto__~${'A'.repeat(22)}`, undefined],
      ['GET', `/events/${id}/queue/q2~x~zzzzzzzzzzz~${'A'.repeat(20)}`, undefined],
      ['POST', `/events/${id}/queue`, { buyer_id: 'x' }],
      ['GET', `/orders/${uid}`, undefined, { authorization: 'Bearer ' + 'é'.repeat(10) }],
      ['GET', `/orders/${uid}`, undefined, { authorization: 'Bearer' }],
      ['POST', `/orders/${uid}/extend`, { a: 1 }, { authorization: `Bearer ${o.body.order_token}` }],
      ['POST', `/orders/${uid}/extend`, undefined, { authorization: `Bearer ${o.body.order_token}`, 'content-type': 'application/json' }],
      ['POST', `/orders/${uid.slice(0, -1)}A/extend`, undefined, { authorization: `Bearer ${o.body.order_token}` }],
      ['GET', `/events/${id}/seats?cursor=%00`, undefined],
      ['GET', `/events/${id}/seats?limit=0`, undefined],
      ['POST', '/admin/events', { id }, { authorization: 'Bearer wrong' }],
      ['POST', '/admin/events', { id: 'x'.repeat(5), name: 'n', pools: [{ id: 'a', name: 'a', capacity: 1, price: 1 }], waitlist: { offer_ttl_seconds: 5 } }, { authorization: 'Bearer test-admin-token-0123456789abcdef' }],
    ];
    const bad: string[] = [];
    for (const [m, p, b, h] of tries) {
      const r = typeof b === 'string' ? await http(stack.url, m, p, undefined, { raw: b, headers: { 'content-type': 'application/json', ...(h ?? {}) } }) : await http(stack.url, m, p, b, { headers: h ?? {} });
      if (r.status >= 500 || !r.body?.code && r.status >= 400) bad.push(`${m} ${p} ${JSON.stringify(b)} -> ${r.status} ${r.text.slice(0, 200)}`);
    }
    expect(bad).toEqual([]);
  });
});

describe('waiting list: one entry nobody can be offered', () => {
  it('an entry for free places (price 0) does not jam the list: the buyers behind it are offered, polls answer 200', async () => {
    const id = eventId('rtw');
    const res = await http(stack.url, 'POST', '/admin/events', {
      id, name: 'Free pool', hold_at: 'order', reservation_ttl_seconds: 60, sale_opens_at: new Date(clock.now()).toISOString(),
      waitlist: { offer_ttl_seconds: 30 },
      pools: [{ id: 'free', name: 'Companion', capacity: 5, price: 0 }, { id: 'ga', name: 'GA', capacity: 5, price: 1_000 }],
    }, { admin: true });
    expect(res.status, res.text).toBe(201);
    const jam = await call('POST', `/events/${id}/waitlist`, { buyer_id: 'jammer', items: [{ pool: 'free', quantity: 1 }] });
    // Refused at the join; one recorded before that check (planted straight into the list) leaves the
    // line when its offer is refused, instead of jamming it.
    expect(jam.status, jam.text).toBe(400);
    expect(jam.body.code).toBe('VALIDATION_FAILED');
    await stack.store.waitlists.join(id, 'planted', [], [{ pool: 'free', quantity: 1 }], 1_000);
    const g = await call('POST', `/events/${id}/waitlist`, { buyer_id: 'genuine', items: [{ pool: 'ga', quantity: 1 }] });
    expect(g.status, g.text).toBe(201);
    // The genuine buyer, whose places are free, is offered; no poll fails meanwhile (every one answered
    // 400 VALIDATION_FAILED before, for good: the entry in front could never be offered).
    const answers: string[] = [];
    await waitFor(async () => {
      clock.advance(1_000);
      const p = await call('GET', `/events/${id}/waitlist/${g.body.waitlist_token}`);
      answers.push(`${p.status} ${p.body.state ?? p.body.code}`);
      return p.status === 200 && p.body.state === 'offered';
    }, 10_000, 'the genuine buyer offered');
    expect(answers.filter((a) => !a.startsWith('200 ')), answers.join(', ')).toEqual([]);
  });
});
