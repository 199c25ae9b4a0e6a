/**
 * Invariant 1 at the record: Postgres refuses an oversell by itself, whatever Redis says, including
 * under concurrent ticket issuing.
 */
import { describe, expect, it } from 'vitest';
import { lifecycle, orders as ordersRepo, events as eventsRepo, isOversellViolation, type Db } from '@dropgate/db';
import { useTestDatabase } from './support/database.ts';

let db: Db;
useTestDatabase('constraints', 20, (opened) => { db = opened; });

async function setup(id: string, capacity: number, orderCount: number) {
  await eventsRepo.insertEvent(db, {
    id, name: id, saleOpensAt: new Date(), saleClosesAt: null, holdTtlSeconds: 60, maxPerBuyer: null, currency: 'KRW',
    pools: [{ id: 'p', name: 'P', capacity, price: 1 }], seats: [{ id: 'S1', section: 'S', row: '1', number: '1', price: 1 }],
  });
  const uids: string[] = [];
  for (let i = 0; i < orderCount; i++) {
    const uid = `${id}.o${String(i).padStart(10, '0')}`;
    await ordersRepo.insertOrder(db, { merchantUid: uid, eventId: id, buyerId: `b${i}`, amount: 1, currency: 'KRW', seats: [], items: [] });
    uids.push(uid);
  }
  return uids;
}

const tryIssue = (id: string, uid: string, lines: lifecycle.TicketLines) =>
  db.transaction().execute((trx) => lifecycle.issueTickets(trx, id, uid, `imp-${uid}`, lines)).then(() => 'ok', (e: unknown) => (isOversellViolation(e) ? 'refused' : Promise.reject(e)));

describe('oversell constraints', () => {
  it('refuses a seat ticketed twice', async () => {
    const [a, b] = await setup('seat-twice', 5, 2);
    expect(await tryIssue('seat-twice', a!, { seats: ['S1'], items: [] })).toBe('ok');
    const error = await db.transaction().execute((trx) => lifecycle.issueTickets(trx, 'seat-twice', b!, 'imp', { seats: ['S1'], items: [] })).catch((e) => e);
    expect(error).toMatchObject({ code: '23505', constraint: 'tickets__event_id_seat_id_uq' });
  });

  it('refuses a serial beyond the pool capacity, and a capacity that is not the pool\'s', async () => {
    const [a] = await setup('serials', 2, 1);
    const beyond = await db.insertInto('tickets').values({ event_id: 'serials', merchant_uid: a!, imp_uid: 'x', pool_id: 'p', pool_capacity: 2, serial: 3 }).execute().catch((e) => e);
    expect(beyond).toMatchObject({ code: '23514', constraint: 'tickets__serial_within_capacity_ck' });
    const lying = await db.insertInto('tickets').values({ event_id: 'serials', merchant_uid: a!, imp_uid: 'x', pool_id: 'p', pool_capacity: 1000, serial: 999 }).execute().catch((e) => e);
    expect(lying).toMatchObject({ code: '23503', constraint: 'tickets__pool_fk' });
  });

  it('issues exactly the capacity when many orders race for the last places', async () => {
    const uids = await setup('pool-race', 25, 60);
    const results = await Promise.all(uids.map((uid) => tryIssue('pool-race', uid, { seats: [], items: [{ pool: 'p', quantity: 1 }] })));
    expect(results.filter((r) => r === 'ok')).toHaveLength(25);
    expect(results.filter((r) => r === 'refused')).toHaveLength(35);
    const serials = await db.selectFrom('tickets').select('serial').where('event_id', '=', 'pool-race').execute();
    expect(serials.map((s) => s.serial).sort((x, y) => x! - y!)).toEqual(Array.from({ length: 25 }, (_, i) => i + 1));
  });

  it('keeps the order event log append-only', async () => {
    const [a] = await setup('log', 1, 1);
    await expect(db.deleteFrom('order_events').where('merchant_uid', '=', a!).execute()).rejects.toThrow(/append-only/);
    await expect(db.updateTable('order_events').set({ type: 'x' } as never).where('merchant_uid', '=', a!).execute()).rejects.toThrow(/append-only/);
  });
});
