/**
 * Issue 12, the failover gap, on a real Redis Cluster (3 primaries, 3 replicas, private to this file):
 *
 * - A hold the dead primary acknowledged (and the worker recorded in Postgres) is missing on the
 *   promoted replica. Reproduced exactly: the replica is stopped and cut off from its primary, the
 *   hold is taken and recorded, the primary is SIGKILLed, the replica resumes and takes over. A second
 *   buyer's confirm for the same seat then comes before the guard runs: it must be refused NOT_READY
 *   (the state is not known to be whole), never approved; after the guard's rebuild the seat is the
 *   first buyer's, and every invariant holds.
 * - The record itself holds conflicting claims on a place (a live hold and a sale of the same seat, two
 *   live holds on a pool's last place: a hold recorded after a rebuild read the record, then another
 *   buyer took the place Redis showed free). A rebuild after a failover keeps the sale and the earliest
 *   hold, ends the other holds through the lifecycle (released in the record, their payments watched:
 *   one that turns out paid is refunded through PortOne), and every invariant holds.
 * - A hold recorded just after a rebuild read the record (the worker read the hold on the old primary,
 *   the rebuild on the new one read the record before the worker wrote it): reproduced exactly by
 *   holding the worker's write back while the event is loaded from the earlier record. The hold ends in
 *   the record at once (released), not at its expiry, so the place is free for another buyer without
 *   two claims on it; A's payment, completed anyway, is refunded.
 * - A rebuild that died after marking the event's state as loading (its worker, or its primary, gone
 *   before it loaded anything) does not leave confirms refused for good: the guard rebuilds it. And a
 *   request to load an event (what a job queues when a script answers not ready) rebuilds state
 *   stamped by another history too: the guard only looks at active events.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSimulator, type Simulator } from '@dropgate/portone-sim';
import { eventId, http, impUid, startPrivateCluster, TestClock, waitFor, type PrivateCluster, type PrivateClusterNode } from '@dropgate/testkit';
import { startStack, type TestStack } from '@dropgate/stack';
import { HoldStore, eventKeys } from '@dropgate/redis';
import { loadSnapshot } from '@dropgate/db';
import { sql } from 'kysely';
import { checkInvariants, ledgerOf } from '@dropgate/invariants';
import { jobIds } from '@dropgate/jobs';
import { eventIdOf } from '@dropgate/domain';
import { shop } from './support/shop.ts';

let cluster: PrivateCluster;
let sim: Simulator;
let stack: TestStack;
const clock = new TestClock();

beforeAll(async () => {
  [cluster, sim] = await Promise.all([startPrivateCluster({ nodeTimeoutMs: 1_000 }), startSimulator({ port: 0, faults: { webhook_retry_ms: 50 } })]);
  // No periodic guard or sweep: each test runs the guard itself, after the moment it reproduces.
  stack = await startStack({ label: 'failover', clusterNodes: cluster.seeds, portoneUrl: sim.url, clock, timers: false, env: { EXPIRY_GRACE_SECONDS: '60' } });
}, 120_000);
afterAll(async () => {
  for (const n of cluster?.nodes ?? []) if (n.process.exitCode === null && n.process.signalCode === null) n.process.kill('SIGCONT');
  await stack?.close();
  await sim?.close();
  await cluster?.stop();
});

const { confirmUrl, noticeUrl, order, detail, orderIs } = shop(() => stack, { prefix: 'fo', section: 'F' });

/** The replica of the primary at `address`. */
async function replicaOf(address: string): Promise<PrivateClusterNode> {
  const port = address.split(':')[1];
  for (const n of cluster.nodes) {
    if (n.address === address || n.process.exitCode !== null || n.process.signalCode !== null) continue;
    const info = await cluster.client(n.address).info('replication');
    if (info.includes('role:slave') && info.includes(`master_port:${port}\r`)) return n;
  }
  throw new Error(`no replica of ${address}`);
}

/** A new event whose keys live on a shard other than the queues' (killing its primary leaves the queues alone). */
async function eventAwayFromQueues(body: Record<string, unknown>): Promise<string> {
  const queueShard = await cluster.primaryOf(`${stack.prefix}:holds:wait`);
  let id = eventId('fo');
  while ((await cluster.primaryOf(eventKeys(id).meta)) === queueShard) id = eventId('fo');
  const res = await http(stack.url, 'POST', '/admin/events', { id, name: 'failover', hold_ttl_seconds: 300, ...body }, { admin: true });
  expect(res.status, res.text).toBe(201);
  return id;
}

/**
 * Until the order's hold is live in the record and the worker is done recording it: the recording
 * checks, after its write, that the event was not loaded again meanwhile (persist-hold.processor.ts),
 * and a test that makes Redis lose the hold between the write and that check sees the recording run
 * again and end the hold, as it must after a real rebuild. So the event's hand-offs are all handled
 * (the relay deletes each entry once done) and no recording job is left.
 */
const liveHoldRecorded = (muid: string) =>
  waitFor(async () => {
    const live = await stack.api.deps.db.selectFrom('holds').select('status').where('merchant_uid', '=', muid).where('status', '=', 'live').executeTakeFirst();
    if (live === undefined || (await stack.store.handoffsLeft(eventIdOf(muid)!)) > 0) return false;
    const job = await stack.api.deps.queues.holds.getJob(jobIds.persistHold(muid, 1));
    return job === undefined || (await job.getState()) === 'completed';
  }, 20_000, `the hold of ${muid} recorded`);

async function invariantsHold(id: string): Promise<void> {
  await sim.settled();
  const report = await checkInvariants({ eventId: id, db: stack.api.deps.db, redis: stack.redis, apiUrl: stack.url, ledger: ledgerOf(sim.ledger(), id), adminToken: stack.config.adminToken! });
  expect(report.results.filter((r) => !r.ok).map((r) => `${r.name}: ${r.violations.join('; ')}`)).toEqual([]);
}

describe('a primary that dies with a hold its replica never got', () => {
  it('a competing confirm before the guard runs is refused NOT_READY; after the rebuild the seat is the first buyer\'s', async () => {
    const id = await eventAwayFromQueues({ seat_blocks: [{ section: 'F', rows: 1, seats_per_row: 1, price: 10_000 }] });
    const a = await order(id, { buyer_id: 'fa', seats: ['F-1-1'] });
    const b = await order(id, { buyer_id: 'fb', seats: ['F-1-1'] });
    const meta = eventKeys(id).meta;
    const primaryAddress = await cluster.primaryOf(meta);
    const primary = cluster.client(primaryAddress);
    const replica = await replicaOf(primaryAddress);
    // Both orders are on the replica; from now on nothing the primary acknowledges reaches it.
    expect(Number(await primary.call('WAIT', '1', '10000'))).toBe(1);
    replica.process.kill('SIGSTOP');
    await primary.call('CLIENT', 'KILL', 'TYPE', 'replica');

    // Buyer A's confirm holds the seat on the primary; the worker records the hold in Postgres.
    const payA = await sim.pay({ merchant_uid: a.merchant_uid, amount: a.amount, confirm_url: confirmUrl(), notice_url: noticeUrl(), outcome: 'abandoned' });
    expect(payA.confirm?.status).toBe(200);
    await liveHoldRecorded(a.merchant_uid);

    // The primary dies; the replica, which never got the hold, takes over.
    await cluster.kill(primaryAddress);
    replica.process.kill('SIGCONT');
    await cluster.waitHealthy(60_000);
    expect(await cluster.primaryOf(meta)).toBe(replica.address);
    // The API's own client reads the promoted replica: the event is there, stamped by the old history,
    // and A's hold is gone.
    const apiStore = new HoldStore(stack.api.deps.redis);
    await waitFor(async () => (await apiStore.stampState(id).catch(() => null)) === 'unstamped', 30_000, 'the API to see the promoted replica');
    expect((await apiStore.orderState(id, a.merchant_uid))?.status).toBe('pending');

    // Buyer B pays for the same seat before the guard ran: refused, nothing held.
    const payB = await sim.pay({ merchant_uid: b.merchant_uid, amount: b.amount, confirm_url: confirmUrl(), notice_url: noticeUrl(), outcome: 'paid' });
    expect(payB.confirm?.status).toBe(503);
    expect(payB.payment.status).toBe('failed');
    expect((await apiStore.orderState(id, b.merchant_uid))?.status).toBe('pending');
    // A direct confirm of B says why.
    const direct503 = await http(stack.url, 'POST', '/portone/v1/confirm', { imp_uid: impUid(), merchant_uid: b.merchant_uid, amount: b.amount });
    expect(direct503.status).toBe(503);

    // The guard rebuilds the event from Postgres: the seat is A's again.
    expect(await stack.worker!.guard()).toContain(id);
    expect(await apiStore.stampState(id)).toBe('whole');
    expect((await apiStore.orderState(id, a.merchant_uid))?.status).toBe('held');
    const retryB = await sim.pay({ merchant_uid: b.merchant_uid, amount: b.amount, confirm_url: confirmUrl(), notice_url: noticeUrl(), outcome: 'paid' });
    expect(retryB.confirm?.status).not.toBe(200);
    expect(retryB.confirm?.body).toMatchObject({ reason: expect.any(String) });

    // A finishes paying: the seat becomes A's ticket.
    sim.setPaymentStatus(payA.payment.imp_uid, 'paid', { webhook: true });
    expect((await orderIs(a.merchant_uid, 'paid', 30_000)).tickets).toHaveLength(1);
    expect((await detail(b.merchant_uid)).tickets ?? []).toEqual([]);
    await invariantsHold(id);
  }, 180_000);
});

describe('a rebuild from a record with conflicting claims', () => {
  it('keeps the sale and the earliest hold, ends the others through the lifecycle (a paid one refunded), every invariant holds', async () => {
    const id = await eventAwayFromQueues({ seat_blocks: [{ section: 'F', rows: 1, seats_per_row: 1, price: 10_000 }], pools: [{ id: 'ga', name: 'GA', capacity: 1, price: 5_000 }] });
    const a = await order(id, { buyer_id: 'ca', seats: ['F-1-1'] });
    const b = await order(id, { buyer_id: 'cb', seats: ['F-1-1'] });
    const c = await order(id, { buyer_id: 'cc', items: [{ pool: 'ga', quantity: 1 }] });
    const d = await order(id, { buyer_id: 'cd', items: [{ pool: 'ga', quantity: 1 }] });
    const before = await loadSnapshot(stack.api.deps.db, id);

    // A holds the seat and C the pool's last place; both holds are recorded.
    const payA = await sim.pay({ merchant_uid: a.merchant_uid, amount: a.amount, confirm_url: confirmUrl(), notice_url: noticeUrl(), outcome: 'abandoned' });
    const payC = await sim.pay({ merchant_uid: c.merchant_uid, amount: c.amount, confirm_url: confirmUrl(), notice_url: noticeUrl(), outcome: 'abandoned' });
    expect([payA.confirm?.status, payC.confirm?.status]).toEqual([200, 200]);
    await liveHoldRecorded(a.merchant_uid);
    await liveHoldRecorded(c.merchant_uid);
    // Redis loses both holds (loaded from a record read before them), so B and D get the same places:
    // B pays (ticketed), D stays in its payment window.
    await stack.store.loadEvent(before!, 'lost');
    const payB = await sim.pay({ merchant_uid: b.merchant_uid, amount: b.amount, confirm_url: confirmUrl(), notice_url: noticeUrl(), outcome: 'paid' });
    expect(payB.confirm?.status).toBe(200);
    expect((await orderIs(b.merchant_uid, 'paid', 30_000)).tickets).toHaveLength(1);
    const payD = await sim.pay({ merchant_uid: d.merchant_uid, amount: d.amount, confirm_url: confirmUrl(), notice_url: noticeUrl(), outcome: 'abandoned' });
    expect(payD.confirm?.status).toBe(200);
    await liveHoldRecorded(d.merchant_uid);

    // A failover: the event's state is stamped by another replication history, and the guard rebuilds
    // it from that record.
    await stack.redis.hset(eventKeys(id).meta, 'replid', 'f'.repeat(40));
    expect(await stack.worker!.guard()).toContain(id);
    // The sale stands and C (the earlier hold) keeps the pool's place; A and D lost theirs.
    const avail = (await http(stack.url, 'GET', `/events/${id}`)).body.availability;
    expect(avail.seats).toMatchObject({ sold: 1, held: 0, available: 0 });
    expect(avail.pools[0]).toMatchObject({ held: 1, sold: 0 });
    expect((await stack.store.orderState(id, c.merchant_uid))?.status).toBe('held');
    expect((await stack.store.orderState(id, d.merchant_uid))?.status).not.toBe('held');
    await orderIs(a.merchant_uid, 'released');
    await orderIs(d.merchant_uid, 'released');

    // A's buyer completes the payment anyway: the money goes back through PortOne's cancel API.
    sim.setPaymentStatus(payA.payment.imp_uid, 'paid', { webhook: true });
    const refunded = await orderIs(a.merchant_uid, 'refunded', 30_000);
    expect(refunded.tickets ?? []).toEqual([]);
    await waitFor(async () => sim.getPayment(payA.payment.imp_uid)?.status === 'cancelled', 20_000, 'A\'s payment cancelled at PortOne');
    // C pays: its hold is committed.
    sim.setPaymentStatus(payC.payment.imp_uid, 'paid', { webhook: true });
    expect((await orderIs(c.merchant_uid, 'paid', 30_000)).tickets).toHaveLength(1);
    // D's buyer gives up.
    sim.setPaymentStatus(payD.payment.imp_uid, 'failed', { webhook: true });
    await invariantsHold(id);
  }, 180_000);
});

/** One seat and two orders for it, of buyers `<tag>a` (A) and `<tag>b` (B). */
async function oneSeatTwoOrders(tag: string) {
  const id = await eventAwayFromQueues({ seat_blocks: [{ section: 'F', rows: 1, seats_per_row: 1, price: 10_000 }] });
  const a = await order(id, { buyer_id: `${tag}a`, seats: ['F-1-1'] });
  const b = await order(id, { buyer_id: `${tag}b`, seats: ['F-1-1'] });
  return { id, a, b };
}

/** A's confirm is approved while the worker's write of A's hold waits (until `blocker.release()`). */
async function aApprovedWhileItsHoldWriteWaits(id: string, a: { merchant_uid: string; amount: number }) {
  // Hold the worker's write of A's hold back: a transaction holding the same hold id makes it wait.
  const blocker = holdBackHoldWrite(id, a.merchant_uid);
  const payA = await sim.pay({ merchant_uid: a.merchant_uid, amount: a.amount, confirm_url: confirmUrl(), notice_url: noticeUrl(), outcome: 'abandoned' });
  expect(payA.confirm?.status).toBe(200);
  await waitingForLock('the worker to wait to record A\'s hold', '%insert into holds%');
  return { blocker, payA };
}

/** A's order and its first hold ended in the record at once: released, not left for the hold's expiry. */
async function aReleasedInTheRecord(aMuid: string): Promise<void> {
  await orderIs(aMuid, 'released', 30_000);
  expect((await stack.api.deps.db.selectFrom('holds').select('status').where('hold_id', '=', `${aMuid}:1`).executeTakeFirst())?.status).toBe('released');
}

/**
 * Holds the worker's write of `muid`'s first hold back: a transaction holding the same hold id makes it
 * wait until `release()`, which rolls the transaction back and resolves once it has.
 */
function holdBackHoldWrite(eventId: string, muid: string): { release: () => Promise<void> } {
  let open!: () => void;
  const gate = new Promise<void>((r) => (open = r));
  const done = stack.api.deps.db.transaction().execute(async (trx) => {
    await trx.insertInto('holds').values({ hold_id: `${muid}:1`, merchant_uid: muid, event_id: eventId, imp_uid: 'blocker', seq: 1, status: 'live', expires_at: new Date(clock.now() + 300_000) }).execute();
    await gate;
    throw new Error('rolled back');
  }).catch(() => undefined);
  return { release: async () => { open(); await done; } };
}

/** Until a session of this database waits for a lock in a statement matching `like`. */
async function waitingForLock(what: string, like: string): Promise<void> {
  await waitFor(async () => {
    const r = await sql<{ n: number }>`select count(*)::int as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock' and query ilike ${like}`.execute(stack.api.deps.db);
    return r.rows[0]!.n > 0;
  }, 20_000, what);
}

/** A's hold ended, the seat is free: B buys it. A's buyer completes the payment anyway: it is refunded. */
async function placeGoesToB(eventId: string, b: { merchant_uid: string; amount: number }, aMuid: string, aImpUid: string): Promise<void> {
  const payB = await sim.pay({ merchant_uid: b.merchant_uid, amount: b.amount, confirm_url: confirmUrl(), notice_url: noticeUrl(), outcome: 'paid' });
  expect(payB.confirm?.status).toBe(200);
  expect((await orderIs(b.merchant_uid, 'paid', 30_000)).tickets).toHaveLength(1);
  sim.setPaymentStatus(aImpUid, 'paid', { webhook: true });
  await orderIs(aMuid, 'refunded', 30_000);
  await invariantsHold(eventId);
}

describe('a hold recorded just after a rebuild read the record', () => {
  it('ends in the record at once (released, not at its expiry); the place goes to another buyer; the first buyer\'s payment is refunded', async () => {
    const { id, a, b } = await oneSeatTwoOrders('r');
    const before = await loadSnapshot(stack.api.deps.db, id);
    const { blocker, payA } = await aApprovedWhileItsHoldWriteWaits(id, a);
    // Meanwhile the event is loaded from the record as it was before A's hold.
    await stack.store.loadEvent(before!, 'reloaded');
    await blocker.release();
    // The worker records the hold, finds the event loaded again, and ends the hold Redis no longer has.
    await aReleasedInTheRecord(a.merchant_uid);
    await placeGoesToB(id, b, a.merchant_uid, payA.payment.imp_uid);
  }, 120_000);
});

describe('a rebuild whose read of the record straddles a hold\'s recording', () => {
  it('loads the record of one moment (never a hold\'s number without its hold): the hold ends in the record at once, Redis and Postgres agree', async () => {
    const { id, a, b } = await oneSeatTwoOrders('s');
    const db = stack.api.deps.db;
    const { blocker, payA } = await aApprovedWhileItsHoldWriteWaits(id, a);
    // A session asking for the holds table alone queues behind the worker's write, and every reader of
    // the holds that comes after it waits until that write is committed.
    const queued = db.transaction().execute((trx) => sql`lock table holds in access exclusive mode`.execute(trx));
    await waitingForLock('the exclusive lock to queue behind the worker', 'lock table holds%');
    // A failover: the guard rebuilds the event. Its read of the record gets past the orders (A is pending
    // there) and waits at the holds.
    await stack.redis.hset(eventKeys(id).meta, 'replid', 'f'.repeat(40));
    const guarding = stack.worker!.guard();
    await waitingForLock('the rebuild to wait to read the holds', 'select %from "holds" where "event_id"%');
    // The worker records A's hold (A held, hold 1 live) between the rebuild's read of the orders and its
    // read of the holds.
    await blocker.release();
    await queued;
    expect(await guarding).toContain(id);
    // Redis never shows A's order pending under the number of the hold the record has live: either the
    // hold is loaded, or the worker finds it gone and ends it in the record at once (not at its expiry).
    await aReleasedInTheRecord(a.merchant_uid);
    expect((await stack.store.orderState(id, a.merchant_uid))?.status).not.toBe('held');
    await placeGoesToB(id, b, a.merchant_uid, payA.payment.imp_uid);
  }, 120_000);
});

describe('a rebuild that died half-way', () => {
  it('an event left loading with nobody rebuilding it is rebuilt by the guard (on its second pass), and confirms resume', async () => {
    const id = await eventAwayFromQueues({ seat_blocks: [{ section: 'F', rows: 1, seats_per_row: 1, price: 10_000 }] });
    const a = await order(id, { buyer_id: 'la', seats: ['F-1-1'] });
    await stack.store.markLoading(id);
    const refused = await http(stack.url, 'POST', '/portone/v1/confirm', { imp_uid: impUid(), merchant_uid: a.merchant_uid, amount: a.amount });
    expect(refused.status).toBe(503);
    // The first pass only notes it (an event being created or rebuilt is left alone); the second rebuilds.
    expect(await stack.worker!.guard()).not.toContain(id);
    expect(await stack.worker!.guard()).toContain(id);
    expect(await stack.store.stampState(id)).toBe('whole');
    // While its rebuild lock is held (a rebuild under way), the guard leaves it alone.
    await stack.store.markLoading(id);
    const token = await stack.store.lockRebuild(id, 30_000);
    expect(token).not.toBeNull();
    expect(await stack.worker!.guard()).not.toContain(id);
    expect(await stack.worker!.guard()).not.toContain(id);
    expect(await stack.store.stampState(id)).toBe('loading');
    await stack.store.unlockRebuild(id, token!);
    expect(await stack.worker!.guard()).toContain(id);
    const pay = await sim.pay({ merchant_uid: a.merchant_uid, amount: a.amount, confirm_url: confirmUrl(), notice_url: noticeUrl(), outcome: 'paid' });
    expect(pay.confirm?.status).toBe(200);
    expect((await orderIs(a.merchant_uid, 'paid', 30_000)).tickets).toHaveLength(1);
    await invariantsHold(id);
  }, 60_000);

  it('a request to load an event (what a job that found it not ready queues) rebuilds state stamped by another history, not only missing state', async () => {
    const id = await eventAwayFromQueues({ seat_blocks: [{ section: 'F', rows: 1, seats_per_row: 1, price: 10_000 }] });
    await stack.redis.hset(eventKeys(id).meta, 'replid', 'f'.repeat(40));
    const epoch = await stack.redis.hget(eventKeys(id).meta, 'epoch');
    await stack.api.deps.queues.maintenance.add('rebuild', { kind: 'rebuild', eventId: id }, { jobId: jobIds.rebuild(id, 'failover-test') });
    await waitFor(async () => (await stack.store.stampState(id)) === 'whole' && (await stack.redis.hget(eventKeys(id).meta, 'epoch')) !== epoch, 20_000, 'the event rebuilt');
  }, 60_000);
});
