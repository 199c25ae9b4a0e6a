/**
 * A paid order voided (its payment cancelled at PortOne's console) while the event is rebuilt from
 * Postgres (attack round 27A). The void gives the seats back in Redis, then voids the tickets in
 * Postgres; a rebuild that read the record between the two loaded the order paid again, its seat sold,
 * and nothing took it back: the seat was never on sale again. Now the void makes Redis agree with the
 * record once more after its commit, and a cancel of a refunded order's payment repeats the void. The
 * API, a worker, real Redis and Postgres (a second connection holds the order's row), the simulator.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSimulator, type Simulator } from '@dropgate/portone-sim';
import { waitFor } from '@dropgate/testkit';
import { startStack, type TestStack } from '@dropgate/stack';
import { jobIds, type MaintenanceJob } from '@dropgate/jobs';
import pg from 'pg';
import { pgConnection } from '@dropgate/db';
import { shop } from './support/shop.ts';
import { brokenInvariants } from './support/invariants.ts';

let sim: Simulator;
let stack: TestStack;
beforeAll(async () => {
  sim = await startSimulator({ port: 0, faults: { webhook_retry_ms: 50 } });
  // Webhook lookups not paced (4 a minute per payment by default): on a loaded machine the simulator may
  // deliver the paid webhook again after its job started, each a lookup of its own, and the cancel's
  // lookup then waits up to 15 s for its turn (one CI run timed out waiting for the void). Pacing is not
  // what this file tests (webhook-bound.test.ts does).
  stack = await startStack({ label: 'voidrebuild', portoneUrl: sim.url, env: { WEBHOOK_LOOKUPS_PER_PAYMENT: '100' } });
});
afterAll(async () => {
  await stack?.close();
  await sim?.close();
});
const { confirmUrl, noticeUrl, event, order, detail, availability, queuesIdle, relayedAndIdle, orderIs } = shop(() => stack, { prefix: 'vr', section: 'V' });

/** A forced rebuild of the event from the record, run to its end. */
async function rebuildNow(id: string) {
  const job: MaintenanceJob = { kind: 'rebuild', eventId: id, force: true };
  const j = await stack.api.deps.queues.maintenance.add('rebuild', job, { jobId: jobIds.rebuild(id, `test-${Date.now()}`) });
  await waitFor(async () => (await j.getState()) === 'completed', 15_000, 'the rebuild');
}

describe('a void and a rebuild at once', () => {
  it('the seat of an order voided while the event was rebuilt goes back on sale', async () => {
    const id = await event({ seats: 1 });
    const o = await order(id, { buyer_id: 'v', seats: ['V-1-1'] });
    const paid = await sim.pay({ merchant_uid: o.merchant_uid, amount: o.amount, confirm_url: confirmUrl(), notice_url: noticeUrl(), outcome: 'paid' });
    await orderIs(o.merchant_uid, 'paid');
    // The relay's recording of the hold done too: one still to come would wait for the row below while
    // holding the order's settlement lock, and the cancel's settlement would wait for that lock (a
    // loaded CI run timed out so).
    await relayedAndIdle(id);
    // Another transaction holds the order's row: the void's transaction waits between Redis's step and
    // its commit, and a rebuild reads the record meanwhile.
    const blocker = new pg.Client(pgConnection(stack.db.url));
    await blocker.connect();
    try {
      await blocker.query('begin');
      await blocker.query('select 1 from orders where merchant_uid = $1 for update', [o.merchant_uid]);
      sim.cancelPayment(paid.payment.imp_uid);
      await waitFor(async () => (await stack.store.orderState(id, o.merchant_uid))?.status === 'refunded', 30_000, 'the void in Redis');
      await rebuildNow(id);
    } finally {
      await blocker.query('commit').catch(() => undefined);
      await blocker.end();
    }
    await sim.settled();
    await queuesIdle();
    const d = await detail(o.merchant_uid);
    expect(d.status).toBe('refunded');
    expect(d.tickets).toEqual([]);
    await waitFor(async () => (await stack.store.orderState(id, o.merchant_uid))?.status !== 'paid', 15_000, 'Redis to agree with the record');
    expect((await availability(id)).seats).toMatchObject({ available: 1, sold: 0 });
    expect(await brokenInvariants(stack, sim, id)).toEqual([]);
  });
});
