/**
 * What PortOne says of a payment, recorded: a reading older than the stored one never wins (attack
 * round 28A). Both writers (lifecycle.upsertPayment and the settlement's batched recordPayments) keep
 * a payment moving forward along ready < failed < paid < cancelled, and its cancelled amount growing.
 * Real Postgres, a database of this file's own.
 */
import { describe, expect, it } from 'vitest';
import { events as eventsRepo, insertOrders, lifecycle, settlement, type Db } from '@dropgate/db';
import { rand } from '@dropgate/testkit';
import { useTestDatabase } from './support/database.ts';

let db: Db;
useTestDatabase('payreadings', 2, (opened) => { db = opened; });

type Status = 'ready' | 'failed' | 'paid' | 'cancelled';
type Writer = (p: lifecycle.PaymentRecord) => Promise<unknown>;
const writers: Record<string, Writer> = {
  upsertPayment: (p) => lifecycle.upsertPayment(db, p),
  recordPayments: (p) => settlement.recordPayments(db, [p]),
};

/** A new order of a new event, and a writer of readings of its payment `imp`. */
async function payment(): Promise<{ imp: string; reading: (status: Status, cancelAmount?: number) => lifecycle.PaymentRecord }> {
  const eventId = `pr-${rand(6)}`;
  await eventsRepo.insertEvent(db, {
    id: eventId, name: eventId, saleOpensAt: new Date(), saleClosesAt: null, holdTtlSeconds: 60, maxPerBuyer: null, currency: 'KRW',
    pools: [{ id: 'ga', name: 'GA', capacity: 10, price: 1000 }], seats: [],
  });
  const merchantUid = `${eventId}.o0000000001`;
  await insertOrders(db, [{ merchantUid, eventId, buyerId: 'b1', currency: 'KRW', amount: 1000, seats: [], items: [{ pool: 'ga', quantity: 1, unitPrice: 1000 }] }]);
  const imp = `imp_${rand(8)}`;
  return {
    imp,
    reading: (status, cancelAmount = 0) => ({
      impUid: imp, merchantUid, eventId, amount: 1000, cancelAmount, status, failReason: status === 'failed' ? 'declined' : null,
      paidAt: status === 'paid' || status === 'cancelled' ? new Date(1_700_000_000_000) : null,
    }),
  };
}

const rowOf = async (imp: string) => db.selectFrom('payments').select(['status', 'cancel_amount']).where('imp_uid', '=', imp).executeTakeFirstOrThrow();

describe.each(Object.keys(writers))('%s', (name) => {
  const write = writers[name]!;

  it('a ready or failed reading written after a paid one leaves the row paid', async () => {
    const { imp, reading } = await payment();
    await write(reading('ready'));
    await write(reading('paid'));
    await write(reading('ready'));
    expect(await rowOf(imp)).toMatchObject({ status: 'paid' });
    await write(reading('failed'));
    expect(await rowOf(imp)).toMatchObject({ status: 'paid' });
  });

  it('moves forward: ready, failed, then paid (some PGs report failed and then paid), partly cancelled, cancelled', async () => {
    const { imp, reading } = await payment();
    await write(reading('ready'));
    await write(reading('failed'));
    expect(await rowOf(imp)).toMatchObject({ status: 'failed' });
    await write(reading('ready'));
    expect(await rowOf(imp)).toMatchObject({ status: 'failed' });
    await write(reading('paid'));
    expect(await rowOf(imp)).toMatchObject({ status: 'paid' });
    await write(reading('paid', 400));
    expect(await rowOf(imp)).toMatchObject({ status: 'paid', cancel_amount: 400 });
    // A reading from before the partial cancel leaves it as it is.
    await write(reading('paid'));
    expect(await rowOf(imp)).toMatchObject({ status: 'paid', cancel_amount: 400 });
    await write(reading('cancelled', 1000));
    await write(reading('paid', 400));
    await write(reading('ready'));
    expect(await rowOf(imp)).toMatchObject({ status: 'cancelled', cancel_amount: 1000 });
  });
});
