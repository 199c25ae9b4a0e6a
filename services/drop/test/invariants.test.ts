/**
 * The invariant checks `npm run drop` runs: after a real drop they hold, and each one reports a
 * violation when the state is deliberately broken (a fake ticket, money without tickets, a hold left
 * behind, Redis counting differently from Postgres), then holds again once the damage is undone.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventKeys } from '@dropgate/redis';
import type { Ledger } from '@dropgate/portone-sim';
import { checkInvariants, orphanStatus, type InvariantInputs, type InvariantReport } from '../src/index.ts';
import { smallDrop, type TestDrop } from './helpers.ts';

let drop: TestDrop;
let inputs: InvariantInputs;

beforeAll(async () => {
  drop = await smallDrop('inv', {}, { keepOpen: true });
  inputs = drop.result.open!.inputs;
});

afterAll(async () => {
  await drop?.result.open?.target.close([drop.result.eventId]);
  await drop?.db.drop();
});

const failing = (r: InvariantReport) => r.results.filter((x) => !x.ok).map((x) => x.id);

describe('invariant checks', () => {
  it('hold after a drop with failed and abandoned payments, lost and duplicated webhooks', () => {
    const { summary, invariants } = drop.result;
    expect(invariants.ok).toBe(true);
    expect(invariants.results.map((r) => [r.id, r.ok])).toEqual([[1, true], [2, true], [3, true], [4, true]]);
    // The drop did what it says: sold, refused, let holds run out.
    expect(summary.inventory.sold).toBeGreaterThan(0);
    expect(summary.confirms.by_code['SOLD_OUT'] ?? 0).toBeGreaterThan(0);
    expect((summary.orders['expired'] ?? 0) + (summary.orders['released'] ?? 0)).toBeGreaterThan(0);
    expect(summary.inventory.held).toBe(0);
    expect(summary.inventory.sold + summary.inventory.remaining).toBe(summary.inventory.capacity);
  });

  it('an order the API inserted and died before Redis got it is pending work until it is withdrawn (attack round 23B)', async () => {
    const { db, eventId } = inputs;
    const target = drop.result.open!.target;
    expect(await orphanStatus(target, eventId)).toEqual([]);
    const uid = `${eventId}.ORPHAN00001`;
    await db.insertInto('orders').values({ merchant_uid: uid, event_id: eventId, buyer_id: 'orphan', amount: 1000, currency: 'KRW', status: 'pending' }).execute();
    try {
      const pending = await orphanStatus(target, eventId);
      expect(pending).toHaveLength(1);
      expect(pending[0]).toContain(`1 order pending in Postgres that Redis never received (${uid}`);
    } finally {
      await db.deleteFrom('orders').where('merchant_uid', '=', uid).execute();
    }
    expect(await orphanStatus(target, eventId)).toEqual([]);
  });

  it('a fake ticket for a free seat breaks 1 (Redis ≠ Postgres count), 2 (no paid payment) and 4 (seat state)', async () => {
    const { db, eventId } = inputs;
    const pending = await db.selectFrom('orders').select('merchant_uid').where('event_id', '=', eventId).where('status', '<>', 'paid').executeTakeFirstOrThrow();
    const free = await db.selectFrom('seats').select('id').where('event_id', '=', eventId)
      .where('id', 'not in', db.selectFrom('tickets').select('seat_id').where('event_id', '=', eventId).where('seat_id', 'is not', null).$narrowType<{ seat_id: string }>())
      .executeTakeFirstOrThrow();
    const inserted = await db.insertInto('tickets')
      .values({ event_id: eventId, merchant_uid: pending.merchant_uid, imp_uid: 'imp_000000000000', seat_id: free.id })
      .returning('id').executeTakeFirstOrThrow();
    try {
      const report = await checkInvariants(inputs);
      expect(report.ok).toBe(false);
      expect(failing(report)).toEqual([1, 2, 4]);
      const [one, two, , four] = report.results;
      expect(one!.violations.join('\n')).toMatch(/Redis counts \d+ sold, Postgres has \d+ seat tickets/);
      expect(two!.violations.join('\n')).toContain('imp_000000000000, which PortOne never saw');
      expect(four!.violations.join('\n')).toContain(`seat ${free.id}: Redis says free`);
    } finally {
      await db.deleteFrom('tickets').where('id', '=', inserted.id).execute();
    }
    expect((await checkInvariants(inputs)).ok).toBe(true);
  });

  it('a paid payment whose order got no tickets breaks 2 (money without tickets)', async () => {
    const order = await inputs.db.selectFrom('orders').select(['merchant_uid', 'amount']).where('event_id', '=', inputs.eventId).where('status', '<>', 'paid').executeTakeFirstOrThrow();
    const template = inputs.ledger.payments[0]!;
    const ledger: Ledger = {
      ...inputs.ledger,
      payments: [...inputs.ledger.payments, { ...template, imp_uid: 'imp_999999999999', merchant_uid: order.merchant_uid, amount: order.amount, status: 'paid', cancel_amount: 0, paid_at: 1_800_000_000 }],
    };
    const report = await checkInvariants({ ...inputs, ledger });
    expect(failing(report)).toEqual([2]);
    expect(report.results[1]!.violations[0]).toContain('imp_999999999999 is paid');
  });

  it('a payment refunded twice through the cancel API breaks 2', async () => {
    const paid = inputs.ledger.payments.find((p) => p.status === 'paid' && p.cancel_amount === 0)!;
    const cancel = { imp_uid: paid.imp_uid, merchant_uid: paid.merchant_uid, amount: paid.amount, checksum: paid.amount, reason: 'test', ok: true, message: null, source: 'api' as const, at: new Date().toISOString() };
    const ledger: Ledger = {
      ...inputs.ledger,
      payments: inputs.ledger.payments.map((p) => (p.imp_uid === paid.imp_uid ? { ...p, status: 'cancelled', cancel_amount: p.amount } : p)),
      cancels: [...inputs.ledger.cancels, cancel, cancel],
    };
    const report = await checkInvariants({ ...inputs, ledger });
    expect(failing(report)).toContain(2);
    expect(report.results[1]!.violations.join('\n')).toContain('refunded 2 times through the cancel API');
  });

  it('a hold left in Redis breaks 3', async () => {
    const k = eventKeys(inputs.eventId);
    await inputs.redis.zadd(k.holds, Date.now() + 60_000, `${inputs.eventId}.leftoverhold`);
    try {
      const report = await checkInvariants(inputs);
      expect(failing(report)).toEqual([3]);
      expect(report.results[2]!.violations[0]).toContain('Redis has 1 live holds');
    } finally {
      await inputs.redis.zrem(k.holds, `${inputs.eventId}.leftoverhold`);
    }
  });

  it('Redis counting one more pool place sold than Postgres breaks 1 and 4', async () => {
    const k = eventKeys(inputs.eventId);
    await inputs.redis.hincrby(k.counts, 'p:floor:sold', 1);
    try {
      const report = await checkInvariants(inputs);
      expect(failing(report)).toEqual([1, 4]);
      expect(report.results[3]!.violations.join('\n')).toMatch(/API: pool floor \d+ sold, Postgres has \d+ tickets/);
    } finally {
      await inputs.redis.hincrby(k.counts, 'p:floor:sold', -1);
    }
    expect((await checkInvariants(inputs)).ok).toBe(true);
  });
});
