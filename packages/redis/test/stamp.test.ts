/**
 * The replication stamp (issue 12): loading an event stamps its state with the replication id of the
 * primary it was written on; a state stamped by another history (what a failover leaves on the
 * promoted replica) reads as not known to be whole. The failover itself is tested on a real cluster
 * in services/drop/test/cluster.test.ts and services/stack/test/failover.test.ts.
 *
 * Nothing is taken on state not known to be whole: every script that holds, commits or retakes places
 * answers "not ready" on it and changes nothing, while refusals and replays are answered as before.
 */
import { describe, expect, it } from 'vitest';
import { eventKeys } from '@dropgate/redis';
import { eventId } from '@dropgate/testkit';
import { holdStoreFixture } from './support/store.ts';

const { redis, store, created } = holdStoreFixture();

describe('replication stamp', () => {
  it('a loaded event is whole on its primary; stamped by another history it is not; missing and loading are told apart', async () => {
    const id = eventId('stamp');
    created.push(id);
    expect(await store.stampState(id)).toBe('missing');
    await store.loadEvent({ id, opensAt: 0, closesAt: null, holdTtlMs: 60_000, maxPerBuyer: null, pools: [{ id: 'p', capacity: 5 }], seats: [], orders: [] }, 'test');
    expect(await store.stampState(id)).toBe('whole');
    const replid = /master_replid:(\w+)/.exec(await redis.info('replication'))![1];
    expect(await redis.hget(eventKeys(id).meta, 'replid')).toBe(replid);
    // What a promoted replica holds: the old primary's id, not its own.
    await redis.hset(eventKeys(id).meta, 'replid', 'f'.repeat(40));
    expect(await store.stampState(id)).toBe('unstamped');
    await store.markLoading(id);
    expect(await store.stampState(id)).toBe('loading');
  });

  it('stamped by another history: no hold, ride, renewal, reservation, extension, commit or retake; refusals and replays unchanged; whole again after a load', async () => {
    const id = eventId('stamp');
    created.push(id);
    const now = Date.now();
    const order = (muid: string, seat: string, status: 'pending' | 'held' | 'paid' | 'expired', exp: number | null = null, imp: string | null = null) => ({
      merchantUid: `${id}.${muid}`, amount: 1000, buyerId: muid, seats: [seat], items: [], status, holdExpiresAt: exp, seq: status === 'pending' ? 0 : 1, impUid: imp,
    });
    const snapshot = {
      id, opensAt: 0, closesAt: null, holdTtlMs: 60_000, maxPerBuyer: null, pools: [], seats: ['A', 'B', 'C', 'D', 'E', 'F'],
      orders: [
        order('new', 'A', 'pending'),
        order('live', 'B', 'held', now + 60_000, 'imp-live'),
        order('lapsed', 'C', 'held', now - 1_000, 'imp-lapsed'),
        order('sold', 'D', 'paid'),
        order('late', 'E', 'expired'),
        order('lost', 'D', 'pending'),
        order('resv', 'F', 'held', now + 60_000),
      ],
    };
    await store.loadEvent(snapshot, 'test');
    // A refusal remembered on the whole state, replayed later.
    expect(await store.placeHold(id, `${id}.sold`, 'imp-sold-again', 1000, now)).toMatchObject({ approved: false, code: 'ALREADY_PAID' });
    const keysBefore = async () => {
      const k = eventKeys(id);
      const [seats, counts, holds, handoff] = await Promise.all([redis.hgetall(k.seats), redis.hgetall(k.counts), redis.zrange(k.holds, 0, -1, 'WITHSCORES'), redis.xlen(k.handoff)]);
      const orders = await Promise.all(snapshot.orders.map((o) => redis.hgetall(k.order(o.merchantUid))));
      return { seats, counts, holds, handoff, orders };
    };

    await redis.hset(eventKeys(id).meta, 'replid', 'f'.repeat(40));
    const before = await keysBefore();
    // A new hold, a payment riding on a live hold, a lapsed hold renewed: not ready, nothing written.
    expect(await store.placeHold(id, `${id}.new`, 'imp-1', 1000, now)).toMatchObject({ approved: false, code: 'NOT_READY' });
    expect(await store.placeHold(id, `${id}.live`, 'imp-2', 1000, now)).toMatchObject({ approved: false, code: 'NOT_READY' });
    expect(await store.placeHold(id, `${id}.lapsed`, 'imp-3', 1000, now)).toMatchObject({ approved: false, code: 'NOT_READY' });
    // A reservation taken at order creation, and one extended.
    expect(await store.reserveOrder(id, { merchantUid: `${id}.res`, amount: 1000, buyerId: 'res', seats: ['A'], items: [], tickets: 1 }, now, 60_000)).toEqual({ result: 'not_ready' });
    expect((await store.extendReservation(id, `${id}.resv`, now, 60_000, 3)).result).toBe('not_ready');
    // A commit from a hold and a late payment taking its seat again.
    expect(await store.settlePaid(id, `${id}.live`)).toBe('not_ready');
    expect(await store.settlePaid(id, `${id}.late`)).toBe('not_ready');
    // Refusals that take nothing are answered as before; a remembered answer is replayed.
    expect(await store.placeHold(id, `${id}.lost`, 'imp-4', 1000, now)).toMatchObject({ approved: false, code: 'SOLD_OUT' });
    expect(await store.placeHold(id, `${id}.sold`, 'imp-sold-again', 1000, now)).toMatchObject({ approved: false, code: 'ALREADY_PAID', replayed: true });
    expect(await store.settlePaid(id, `${id}.sold`)).toBe('already_paid');
    const after = await keysBefore();
    expect(after).toEqual(before);

    // Loaded again (the guard's rebuild): stamped by this history, whole, and the same confirm holds.
    await store.loadEvent(snapshot, 'rebuilt');
    expect(await store.stampState(id)).toBe('whole');
    expect(await store.placeHold(id, `${id}.new`, 'imp-1', 1000, now)).toMatchObject({ approved: true, kind: 'new' });
  });
});

