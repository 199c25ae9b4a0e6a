/**
 * `findOrderDetail` (GET /orders/:merchant_uid): the order row first, checked by the caller's test
 * before anything else is read; then its lines, tickets and payments in one statement. Buyers poll
 * their order after paying; four statements at once took four of the pool's connections (the order
 * inserts' too) for every read. Reads of one order in flight are shared. The pool below counts the
 * connections Kysely takes, one per statement. The status shown is the one read with the tickets and
 * payments, so a settlement committing between the two reads cannot show a held order with tickets.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import { events as eventsRepo, lifecycle, orders as ordersRepo, pgConnection, type Database, type Db } from '@dropgate/db';
import { createTestDatabase, type TestDatabase } from '@dropgate/testkit';

let database: TestDatabase;
let pool: pg.Pool;
let db: Db;
let statements = 0;
let busiest = 0;
const EVENT = 'detail';
const UID = `${EVENT}.o0000000001`;
beforeAll(async () => {
  database = await createTestDatabase('orderdetail');
  pool = new pg.Pool({ ...pgConnection(database.url), max: 8 });
  pool.on('error', () => undefined); // as the project's own pools: a session ended fails its query, not the process
  pool.on('acquire', () => { statements++; busiest = Math.max(busiest, pool.totalCount - pool.idleCount); });
  db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  await eventsRepo.insertEvent(db, {
    id: EVENT, name: EVENT, saleOpensAt: new Date(), saleClosesAt: null, holdTtlSeconds: 60, maxPerBuyer: null, currency: 'KRW',
    pools: [{ id: 'ga', name: 'GA', capacity: 10, price: 500 }],
    seats: [{ id: 'A-1', section: 'A', row: '1', number: '1', price: 1000 }, { id: 'A-2', section: 'A', row: '1', number: '2', price: 1000 }],
  });
  await ordersRepo.insertOrder(db, {
    merchantUid: UID, eventId: EVENT, buyerId: 'b', amount: 3000, currency: 'KRW',
    seats: [{ id: 'A-2', price: 1000 }, { id: 'A-1', price: 1000 }], items: [{ pool: 'ga', quantity: 2, unitPrice: 500 }],
  });
  const paidAt = new Date('2026-12-01T10:00:00.123Z');
  await lifecycle.upsertPayment(db, { impUid: 'imp_detail_1', merchantUid: UID, eventId: EVENT, amount: 3000, cancelAmount: 0, status: 'paid', failReason: null, paidAt });
  await lifecycle.upsertPayment(db, { impUid: 'imp_detail_2', merchantUid: UID, eventId: EVENT, amount: 3000, cancelAmount: 0, status: 'failed', failReason: 'declined', paidAt: null });
  await db.transaction().execute((trx) => lifecycle.issueTickets(trx, EVENT, UID, 'imp_detail_1', { seats: ['A-1', 'A-2'], items: [{ pool: 'ga', quantity: 2 }] }));
});
afterAll(async () => {
  await db?.destroy();
  await database?.drop();
});

describe('findOrderDetail', () => {
  it('reads the order, then everything else in one statement on one connection; a refused caller costs the order row only', async () => {
    statements = 0;
    busiest = 0;
    const detail = await ordersRepo.findOrderDetail(db, UID, () => true);
    expect(statements).toBe(2);
    expect(busiest).toBe(1);
    expect(detail!.order.merchant_uid).toBe(UID);
    expect(detail!.lines).toEqual({ seats: [{ seat_id: 'A-1', price: 1000 }, { seat_id: 'A-2', price: 1000 }], items: [{ pool_id: 'ga', quantity: 2, unit_price: 500 }] });
    expect(detail!.tickets.map((t) => [t.seat_id, t.pool_id, t.serial, t.imp_uid])).toEqual([
      ['A-1', null, null, 'imp_detail_1'], ['A-2', null, null, 'imp_detail_1'], [null, 'ga', 1, 'imp_detail_1'], [null, 'ga', 2, 'imp_detail_1'],
    ]);
    for (const t of detail!.tickets) {
      expect(t.issued_at).toBeInstanceOf(Date);
      expect(typeof t.id).toBe('number');
    }
    expect(detail!.payments).toEqual([
      { imp_uid: 'imp_detail_1', amount: 3000, cancel_amount: 0, status: 'paid', fail_reason: null, paid_at: new Date('2026-12-01T10:00:00.123Z') },
      { imp_uid: 'imp_detail_2', amount: 3000, cancel_amount: 0, status: 'failed', fail_reason: 'declined', paid_at: null },
    ]);

    statements = 0;
    expect(await ordersRepo.findOrderDetail(db, UID, () => false)).toBeUndefined();
    expect(statements).toBe(1);
  });

  it('shares the reads in flight of one order: fifty callers at once, half of them refused, cost two statements', async () => {
    statements = 0;
    const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => ordersRepo.findOrderDetail(db, UID, () => i % 2 === 0)));
    expect(statements).toBe(2);
    expect(answers.filter((a) => a === undefined)).toHaveLength(25);
    for (const a of answers.filter((x) => x !== undefined)) expect(a!.payments).toHaveLength(2);
    // Once they are done, the next read reads again (nothing is kept).
    statements = 0;
    await ordersRepo.findOrderDetail(db, UID);
    expect(statements).toBe(2);
  });

  it('shows the status read with the tickets: a settlement committing between the order row and the rest shows paid, not held with tickets', async () => {
    const uid = `${EVENT}.o0000000002`;
    await ordersRepo.insertOrder(db, { merchantUid: uid, eventId: EVENT, buyerId: 'b2', amount: 1000, currency: 'KRW', seats: [], items: [{ pool: 'ga', quantity: 2, unitPrice: 500 }] });
    expect(await lifecycle.transition(db, uid, 'hold_taken', null)).toBe(true);
    // The settlement, held open after its writes with tickets locked: a statement that reads tickets
    // waits for its commit, and then (read committed) sees what it committed.
    let written!: () => void;
    const writesDone = new Promise<void>((resolve) => { written = resolve; });
    let commit!: () => void;
    const gate = new Promise<void>((resolve) => { commit = resolve; });
    const settlement = db.transaction().execute(async (trx) => {
      await lifecycle.upsertPayment(trx, { impUid: 'imp_detail_3', merchantUid: uid, eventId: EVENT, amount: 1000, cancelAmount: 0, status: 'paid', failReason: null, paidAt: new Date() });
      await lifecycle.issueTickets(trx, EVENT, uid, 'imp_detail_3', { seats: [], items: [{ pool: 'ga', quantity: 2 }] });
      expect(await lifecycle.transition(trx, uid, 'paid', null, { paidImpUid: 'imp_detail_3' })).toBe(true);
      await sql`lock table tickets in access exclusive mode`.execute(trx);
      written();
      await gate;
    });
    await writesDone;
    let rowStatus: string | null = null;
    // The caller's check runs on the order row (still held: the settlement has not committed) and lets
    // the settlement commit before the rest is read.
    const detail = await ordersRepo.findOrderDetail(db, uid, (order) => { rowStatus = order.status; commit(); return true; });
    await settlement;
    expect(rowStatus).toBe('held');
    expect(detail!.tickets).toHaveLength(2);
    expect(detail!.order.status).toBe('paid');
    expect(detail!.order.paid_imp_uid).toBe('imp_detail_3');
    expect(detail!.order.hold_expires_at).toBeNull();
    expect(detail!.payments.map((p) => p.status)).toEqual(['paid']);
  });
});
