/**
 * The Lua scripts against a real Redis, with time passed in by the caller (as the design requires),
 * so windows and expiries are tested without sleeping.
 */
import { describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { HoldStore, SCRIPTS, eventKeyPattern, eventKeys, scanEachPrimary, type EventSnapshot } from '@dropgate/redis';
import { eventId } from '@dropgate/testkit';
import { holdStoreFixture } from './support/store.ts';

const { redis, store, created } = holdStoreFixture();

const T0 = 1_900_000_000_000;
async function keysOf(id: string): Promise<string[]> {
  const found: string[] = [];
  await scanEachPrimary(redis, eventKeyPattern(id), async (_node, keys) => { found.push(...keys); });
  return found;
}
async function load(extra: Partial<EventSnapshot> = {}): Promise<string> {
  const id = eventId('hs');
  created.push(id);
  await store.loadEvent({
    id, opensAt: T0, closesAt: T0 + 3_600_000, holdTtlMs: 60_000, maxPerBuyer: null,
    pools: [{ id: 'p', capacity: 5 }], seats: ['s1', 's2', 's3'], orders: [], ...extra,
  }, 'test');
  return id;
}
async function order(id: string, uid: string, seats: string[], items: { pool: string; quantity: number }[] = [], buyer = 'b', amount = 100) {
  const r = await store.createOrder(id, { merchantUid: uid, amount, buyerId: buyer, seats, items, tickets: seats.length + items.reduce((n, i) => n + i.quantity, 0) });
  expect(r).toBe('created');
}

describe('Lua scripts', () => {
  it('every script file is named <name>-<numKeys>.lua and declares its keys in a header', () => {
    expect(SCRIPTS.map((s) => s.name).sort()).toEqual(['checkStamp', 'claimOrder', 'createOrder', 'dropPayment', 'dropWaitlist', 'extendLock', 'extendReservation', 'finishLoad', 'joinQueue', 'joinWaitlist', 'noteWebhook', 'placeHold', 'pollQueue', 'releaseAttempt', 'releaseHold', 'releaseLock', 'reserveOrder', 'scanWaitlist', 'seatPage', 'settlePaid', 'unclaimOrder', 'undoHold', 'useAdmission', 'voidSale', 'withdrawOrphans']);
    for (const s of SCRIPTS) {
      for (let k = 1; k <= s.numberOfKeys; k++) expect(s.lua, `${s.name} KEYS[${k}]`).toContain(`KEYS[${k}]`);
      expect(s.lua).not.toContain('--- @include');
    }
  });

  it('releaseAttempt: a refused manual confirmation gives the seats back and forgets the attempt\'s answer', async () => {
    const id = await load();
    const uid = `${id}.ra`;
    await order(id, uid, ['s1']);
    expect(await store.placeHold(id, uid, 'v2.tx1', 100, T0)).toMatchObject({ approved: true, kind: 'new', seq: 1 });
    expect(await store.releaseAttempt(id, uid, 'v2.tx1')).toBe(true);
    expect(await store.orderState(id, uid)).toMatchObject({ status: 'released' });
    expect(await store.seatStates(id, ['s1'])).toEqual(['available']);
    // Decided afresh (undoHold would have remembered a refusal): the genuine request holds again.
    expect(await store.placeHold(id, uid, 'v2.tx1', 100, T0 + 1)).toMatchObject({ approved: true, kind: 'new', seq: 2, replayed: false });
    // Another attempt rides on the hold meanwhile: the refused one only gets off it.
    expect(await store.placeHold(id, uid, 'v2.tx2', 100, T0 + 2)).toMatchObject({ approved: true, kind: 'live' });
    expect(await store.releaseAttempt(id, uid, 'v2.tx1')).toBe(false);
    expect(await store.orderState(id, uid)).toMatchObject({ status: 'held', impUid: 'v2.tx2', impUids: ['v2.tx2'] });
    // A rider's refusal never releases the hold it rode on; an unknown attempt changes nothing.
    expect(await store.releaseAttempt(id, uid, 'v2.tx2')).toBe(false);
    expect(await store.releaseAttempt(id, uid, 'v2.nope')).toBe(false);
    expect(await store.orderState(id, uid)).toMatchObject({ status: 'held', seq: 2 });
  });

  it('undoHold: a new hold answered too late is released, but not while another payment rides on it (attack round 20B)', async () => {
    const id = await load();
    const uid = `${id}.uh`;
    await order(id, uid, ['s1']);
    expect(await store.placeHold(id, uid, 'imp-late', 100, T0)).toMatchObject({ approved: true, kind: 'new', seq: 1 });
    // A retry of the payment is approved on the live hold before the late answer's undo runs.
    expect(await store.placeHold(id, uid, 'imp-retry', 100, T0 + 1)).toMatchObject({ approved: true, kind: 'live', seq: 1 });
    expect(await store.undoHold(id, uid, 'imp-late')).toBe(false);
    expect(await store.orderState(id, uid)).toMatchObject({ status: 'held', seq: 1, impUid: 'imp-retry', impUids: ['imp-retry'] });
    expect(await store.seatStates(id, ['s1'])).toEqual(['held']);
    // The late request's answer is the refusal from now on; the retry's stays approved.
    expect(await store.placeHold(id, uid, 'imp-late', 100, T0 + 2)).toMatchObject({ approved: false, code: 'DEADLINE', replayed: true });
    expect(await store.placeHold(id, uid, 'imp-retry', 100, T0 + 2)).toMatchObject({ approved: true, replayed: true });

    // Alone on its hold, an undone approval gives the seats back.
    const alone = `${id}.ua`;
    await order(id, alone, ['s2']);
    expect(await store.placeHold(id, alone, 'imp-a', 100, T0)).toMatchObject({ approved: true, kind: 'new' });
    expect(await store.undoHold(id, alone, 'imp-a')).toBe(true);
    expect(await store.orderState(id, alone)).toMatchObject({ status: 'pending' });
    expect(await store.seatStates(id, ['s2'])).toEqual(['available']);
  });

  it('an unsigned confirm takes or renews no hold while the last hold one took is unchecked with PortOne (attack round 27B)', async () => {
    const id = await load(); // hold TTL 60 s
    const uid = `${id}.uc`;
    await order(id, uid, ['s1']);
    expect(await store.placeHold(id, uid, 'imp-f1', 100, T0)).toMatchObject({ approved: true, kind: 'new', seq: 1 });
    // A retry rides on the live hold: that lengthens nothing, so it needs no word from PortOne.
    expect(await store.placeHold(id, uid, 'imp-f2', 100, T0 + 1_000)).toMatchObject({ approved: true, kind: 'live', seq: 1 });
    // Under half the TTL left: it would be renewed. Refused, and neither remembered nor changed.
    expect(await store.placeHold(id, uid, 'imp-f3', 100, T0 + 40_000)).toEqual({ approved: false, code: 'PAYMENT_UNCHECKED', replayed: false });
    expect(await store.orderState(id, uid)).toMatchObject({ status: 'held', seq: 1, expiresAt: T0 + 60_000, impUids: ['imp-f1', 'imp-f2'] });
    expect(await redis.hexists(eventKeys(id).answers(uid), 'imp-f3')).toBe(0);
    // Lapsed, unswept: no renewal either. Expired (PortOne still silent): no new hold.
    expect(await store.placeHold(id, uid, 'imp-f4', 100, T0 + 61_000)).toMatchObject({ approved: false, code: 'PAYMENT_UNCHECKED' });
    expect(await store.releaseHold(id, uid, { seq: 1, status: 'expired', nowMs: T0 + 70_000, onlyIfOverdue: true })).toBe('released');
    expect(await store.placeHold(id, uid, 'imp-f5', 100, T0 + 71_000)).toMatchObject({ approved: false, code: 'PAYMENT_UNCHECKED' });
    expect(await store.seatStates(id, ['s1'])).toEqual(['available']);
    // PortOne answered (markChecked): the refused request is decided afresh, and holds.
    expect(await store.markChecked(id, uid)).toBe(true);
    expect(await store.markChecked(id, uid)).toBe(false);
    expect(await store.placeHold(id, uid, 'imp-f5', 100, T0 + 72_000)).toMatchObject({ approved: true, kind: 'new', seq: 2, replayed: false });

    // The worker taking a made-up payment off the hold (dropPayment) is PortOne's answer too.
    const dropped = `${id}.ud`;
    await order(id, dropped, ['s2']);
    expect(await store.placeHold(id, dropped, 'imp-d1', 100, T0)).toMatchObject({ approved: true, kind: 'new', seq: 1 });
    expect(await store.dropPayment(id, dropped, 'imp-d1', 1)).toBe('released');
    expect(await store.placeHold(id, dropped, 'imp-d2', 100, T0 + 1)).toMatchObject({ approved: true, kind: 'new', seq: 2 });
    // An undone approval (refused for the deadline) leaves nothing to check: the buyer's retry holds.
    const undone = `${id}.uu`;
    await order(id, undone, ['s3']);
    expect(await store.placeHold(id, undone, 'imp-u1', 100, T0)).toMatchObject({ approved: true, kind: 'new', seq: 1 });
    expect(await store.undoHold(id, undone, 'imp-u1')).toBe(true);
    expect(await store.placeHold(id, undone, 'imp-u2', 100, T0 + 1)).toMatchObject({ approved: true, kind: 'new', seq: 2 });
    // Signed V2 keys (PortOne's signed confirm, or a manual confirmation that read PortOne) never wait.
    const signed = `${id}.uv`;
    await order(id, signed, [], [{ pool: 'p', quantity: 1 }]);
    expect(await store.placeHold(id, signed, 'v2.t1', 100, T0)).toMatchObject({ approved: true, kind: 'new', seq: 1 });
    expect(await store.placeHold(id, signed, 'v2.t2', 100, T0 + 50_000)).toMatchObject({ approved: true, kind: 'renewed', seq: 2 });
    expect(await redis.hexists(eventKeys(id).order(signed), 'uh')).toBe(0);
  });

  it('undoHold takes back only what its own request decided: a replay\'s undo leaves the approval and its answer (attack rounds 23A, 24)', async () => {
    const id = await load();
    const uid = `${id}.ur`;
    await order(id, uid, ['s1']);
    // Request A is approved (in time); request B replays it and is answered too late: B's undo changes nothing.
    expect(await store.placeHold(id, uid, 'imp-x', 100, T0, 'reqA')).toMatchObject({ approved: true, kind: 'new', replayed: false });
    expect(await store.placeHold(id, uid, 'imp-x', 100, T0 + 1, 'reqB')).toMatchObject({ approved: true, replayed: true });
    expect(await store.undoHold(id, uid, 'imp-x', 'reqB')).toBe(false);
    expect(await store.orderState(id, uid)).toMatchObject({ status: 'held', seq: 1, impUid: 'imp-x' });
    expect(await store.placeHold(id, uid, 'imp-x', 100, T0 + 2, 'reqC')).toMatchObject({ approved: true, replayed: true });
    // A refusal remembered for A is not turned into B's DEADLINE either.
    const other = `${id}.us`;
    await order(id, other, ['s1']);
    expect(await store.placeHold(id, other, 'imp-y', 100, T0, 'reqA')).toMatchObject({ approved: false, code: 'SOLD_OUT' });
    expect(await store.undoHold(id, other, 'imp-y', 'reqB')).toBe(false);
    expect(await store.placeHold(id, other, 'imp-y', 100, T0 + 1, 'reqC')).toMatchObject({ approved: false, code: 'SOLD_OUT', replayed: true });
    // An answer an earlier version remembered (no request id) is never this request's either (round 25).
    const k = eventKeys(id);
    const old = `${id}.uo`;
    await order(id, old, ['s2']);
    expect(await store.placeHold(id, old, 'imp-o', 100, T0, 'reqA')).toMatchObject({ approved: true, kind: 'new' });
    const v5 = (await redis.hget(k.answers(old), 'imp-o'))!;
    await redis.hset(k.answers(old), 'imp-o', v5.replace(/\|reqA$/, ''));
    expect(await store.undoHold(id, old, 'imp-o', 'reqB')).toBe(false);
    expect(await store.orderState(id, old)).toMatchObject({ status: 'held' });
    // A's own undo takes its hold back.
    expect(await store.undoHold(id, uid, 'imp-x', 'reqA')).toBe(true);
    expect(await store.orderState(id, uid)).toMatchObject({ status: 'pending' });
    expect(await store.placeHold(id, uid, 'imp-x', 100, T0 + 3, 'reqD')).toMatchObject({ approved: false, code: 'DEADLINE', replayed: true });
  });

  it('undoHold and releaseAttempt release nothing while the event is being loaded (its parts come in several pipelines; round 24)', async () => {
    const id = await load();
    const uid = `${id}.ul`;
    await order(id, uid, ['s1']);
    expect(await store.placeHold(id, uid, 'imp-l', 100, T0, 'reqL')).toMatchObject({ approved: true, kind: 'new' });
    const tx = `${id}.ut`;
    await order(id, tx, ['s2']);
    expect(await store.placeHold(id, tx, 'v2.tx', 100, T0, 'reqT')).toMatchObject({ approved: true, kind: 'new' });
    await store.markLoading(id);
    expect(await store.undoHold(id, uid, 'imp-l', 'reqL')).toBe(false);
    expect(await store.releaseAttempt(id, tx, 'v2.tx')).toBe(false);
    // Nothing moved: the seats and counts a load is writing stay as they are.
    expect(await store.orderState(id, uid)).toMatchObject({ status: 'held' });
    expect(await store.orderState(id, tx)).toMatchObject({ status: 'held' });
    expect(await store.seatStates(id, ['s1', 's2'])).toEqual(['held', 'held']);
    // The refusal is still the request's remembered answer.
    expect(await redis.hget(eventKeys(id).answers(uid), 'imp-l')).toMatch(/^-10\|/);
  });

  it('a retried payment rides on a live hold, but renews it when too little is left for the PG to approve in (attack round 20B)', async () => {
    const id = await load(); // hold TTL 60 s: a ride needs at least 30 s left
    const uid = `${id}.rn`;
    await order(id, uid, ['s1']);
    expect(await store.placeHold(id, uid, 'imp-1', 100, T0)).toMatchObject({ approved: true, kind: 'new', seq: 1, expiresAt: T0 + 60_000 });
    expect(await store.placeHold(id, uid, 'imp-2', 100, T0 + 30_000)).toMatchObject({ approved: true, kind: 'live', seq: 1, expiresAt: T0 + 60_000 });
    // The worker has PortOne's word on the payments (see the unchecked tests below).
    await store.markChecked(id, uid);
    // 0.5 s before the end: a new hold number with a whole TTL; the payments on the old one stay on it.
    expect(await store.placeHold(id, uid, 'imp-3', 100, T0 + 59_500)).toMatchObject({ approved: true, kind: 'renewed', seq: 2, expiresAt: T0 + 119_500 });
    expect(await store.orderState(id, uid)).toMatchObject({ status: 'held', seq: 2, impUid: 'imp-3', impUids: ['imp-1', 'imp-2', 'imp-3'] });
    // An expiry decided on the old hold number leaves the renewed hold alone.
    expect(await store.releaseHold(id, uid, { status: 'expired', nowMs: T0 + 61_000, seq: 1, onlyIfOverdue: true })).not.toBe('released');
    expect(await store.seatStates(id, ['s1'])).toEqual(['held']);
  });

  it('after the sale closes, a payment rides on a live hold but renews none (attack round 20B)', async () => {
    const id = await load(); // closes at T0 + 1 h
    const closes = T0 + 3_600_000;
    const lapsed = `${id}.cl`;
    const live = `${id}.lv`;
    await order(id, lapsed, ['s1']);
    await order(id, live, ['s2']);
    expect(await store.placeHold(id, lapsed, 'imp-l1', 100, closes - 100_000)).toMatchObject({ approved: true, kind: 'new' });
    expect(await store.placeHold(id, live, 'imp-v1', 100, closes - 10_000)).toMatchObject({ approved: true, kind: 'new', expiresAt: closes + 50_000 });
    // Lapsed (unswept) at the close: renewing it would be a new hold after the sale ended.
    expect(await store.placeHold(id, lapsed, 'imp-l2', 100, closes + 100)).toMatchObject({ approved: false, code: 'SALE_CLOSED' });
    // 49.9 s left: the retry rides on it.
    expect(await store.placeHold(id, live, 'imp-v2', 100, closes + 100)).toMatchObject({ approved: true, kind: 'live', seq: 1 });
    // 25 s left (under half the TTL): it would be renewed, which a closed sale does not do.
    expect(await store.placeHold(id, live, 'imp-v3', 100, closes + 25_000)).toMatchObject({ approved: false, code: 'SALE_CLOSED' });
  });

  it('placeHold, called with the order key alone, writes only the keys keys.ts names for the event, and takes its limits from the store', async () => {
    const id = await load({ maxPerBuyer: 4 });
    const k = eventKeys(id);
    await order(id, `${id}.n1`, ['s1'], [{ pool: 'p', quantity: 1 }], 'buyer-1');
    await order(id, `${id}.n2`, ['s1']);
    const before = new Set(await keysOf(id));
    expect([...before].sort()).toEqual([k.meta, k.seats, k.seatIndex('available'), k.counts, k.order(`${id}.n1`), k.order(`${id}.n2`)].sort());
    expect(await store.placeHold(id, `${id}.n1`, 'imp-1', 100, T0)).toMatchObject({ approved: true, kind: 'new', seq: 1 });
    expect(await store.placeHold(id, `${id}.n2`, 'imp-2', 100, T0)).toMatchObject({ approved: false, code: 'SOLD_OUT' });
    const written = (await keysOf(id)).filter((key) => !before.has(key)).sort();
    expect(written).toEqual([k.answers(`${id}.n1`), k.answers(`${id}.n2`), k.buyers, k.handoff, k.holds, k.seatIndex('held')].sort());
    // Each named key took what the script reads back through the store's own key names.
    expect(await redis.hget(k.seats, 's1')).toBe(`h:${id}.n1`);
    expect(await redis.hmget(k.counts, 'seats_held', 'p:p:held')).toEqual(['1', '1']);
    expect(await redis.hget(k.buyers, 'buyer-1')).toBe('2');
    expect(await redis.zscore(k.holds, `${id}.n1`)).toBe(String(T0 + 60_000));
    expect(await redis.xlen(k.handoff)).toBe(1);
    expect(await redis.zscore(k.seatIndex('held'), 's1')).toBe('0');
    // The limits: answers live as long as the store says, and a store allowing two payments an order refuses the third.
    const strict = new HoldStore(redis, { decisionTtlSeconds: 120, maxPaymentsPerOrder: 2, maxHoldsPerOrder: 8 });
    const ttl = await redis.ttl(k.answers(`${id}.n1`));
    expect(ttl).toBeGreaterThan(86_000);
    expect(await strict.placeHold(id, `${id}.n1`, 'imp-3', 100, T0 + 1)).toMatchObject({ approved: true, kind: 'live' });
    expect(await redis.ttl(k.answers(`${id}.n1`))).toBeLessThanOrEqual(120);
    expect(await strict.placeHold(id, `${id}.n1`, 'imp-4', 100, T0 + 2)).toMatchObject({ approved: false, code: 'TOO_MANY_ATTEMPTS' });
    expect(() => new HoldStore(redis, { maxPaymentsPerOrder: 0 })).toThrow(/maxPaymentsPerOrder/);
  });

  it('refuses outside the sale window using the caller\'s clock', async () => {
    const id = await load();
    await order(id, `${id}.o1`, ['s1']);
    expect(await store.placeHold(id, `${id}.o1`, 'i1', 100, T0 - 1)).toMatchObject({ approved: false, code: 'SALE_NOT_OPEN' });
    expect(await store.placeHold(id, `${id}.o1`, 'i2', 100, T0 + 3_600_000)).toMatchObject({ approved: false, code: 'SALE_CLOSED' });
    expect(await store.placeHold(id, `${id}.o1`, 'i3', 100, T0)).toMatchObject({ approved: true, kind: 'new', expiresAt: T0 + 60_000, seq: 1 });
    // remembered per imp_uid
    expect(await store.placeHold(id, `${id}.o1`, 'i1', 100, T0 + 10)).toMatchObject({ approved: false, code: 'SALE_NOT_OPEN', replayed: true });
  });

  it('holds all or nothing: one unavailable seat or pool place refuses the whole order', async () => {
    const id = await load();
    await order(id, `${id}.a`, ['s1']);
    await order(id, `${id}.b`, ['s2', 's1'], [{ pool: 'p', quantity: 1 }]);
    await order(id, `${id}.c`, ['s3'], [{ pool: 'p', quantity: 6 }]);
    expect((await store.placeHold(id, `${id}.a`, 'ia', null, T0)).approved).toBe(true);
    expect(await store.placeHold(id, `${id}.b`, 'ib', null, T0)).toMatchObject({ approved: false, code: 'SOLD_OUT' });
    expect(await store.placeHold(id, `${id}.c`, 'ic', null, T0)).toMatchObject({ approved: false, code: 'SOLD_OUT' });
    const a = await store.availability(id, [{ id: 'p' }]);
    expect(a?.seats).toEqual({ capacity: 3, held: 1, sold: 0, available: 2 });
    expect(a?.pools[0]).toEqual({ id: 'p', capacity: 5, held: 0, sold: 0, available: 5 });
    expect(await store.seatStates(id, ['s1', 's2', 'nope'])).toEqual(['held', 'available', null]);
  });

  it('expires only overdue holds, renews a lapsed one, and settles late payments', async () => {
    const id = await load();
    await order(id, `${id}.a`, ['s1'], [{ pool: 'p', quantity: 2 }]);
    await store.placeHold(id, `${id}.a`, 'ia', null, T0);
    await store.markChecked(id, `${id}.a`); // the worker verified 'ia' with PortOne
    expect(await store.releaseHold(id, `${id}.a`, { status: 'expired', nowMs: T0 + 59_999, onlyIfOverdue: true })).toBe('not_overdue');
    expect(await store.overdueHolds(id, T0 + 60_000)).toEqual([`${id}.a`]);
    // A new payment on the lapsed (unswept) hold renews it under a new seq.
    expect(await store.placeHold(id, `${id}.a`, 'ia2', null, T0 + 70_000)).toMatchObject({ approved: true, kind: 'renewed', seq: 2, expiresAt: T0 + 130_000 });
    expect(await store.releaseHold(id, `${id}.a`, { seq: 1, status: 'expired', nowMs: T0 + 200_000, onlyIfOverdue: true })).toBe('superseded');
    expect(await store.releaseHold(id, `${id}.a`, { seq: 2, status: 'expired', nowMs: T0 + 200_000, onlyIfOverdue: true })).toBe('released');
    expect(await store.releaseHold(id, `${id}.a`, { seq: 2, status: 'expired', nowMs: T0 + 200_000, onlyIfOverdue: true })).toBe('nothing_held');
    // Paid after expiry: seats still free, so it takes them again.
    expect(await store.settlePaid(id, `${id}.a`)).toBe('retaken');
    expect(await store.settlePaid(id, `${id}.a`)).toBe('already_paid');
    const a = await store.availability(id, [{ id: 'p' }]);
    expect(a?.seats).toMatchObject({ sold: 1, held: 0 });
    expect(a?.pools[0]).toMatchObject({ sold: 2, held: 0, available: 3 });
    // Voiding gives it all back.
    expect(await store.voidSale(id, `${id}.a`, 'refunded')).toBe('voided');
    expect((await store.availability(id, [{ id: 'p' }]))?.pools[0]).toMatchObject({ sold: 0, available: 5 });
  });

  it('refuses a late payment whose seats were resold', async () => {
    const id = await load();
    await order(id, `${id}.a`, ['s1']);
    await order(id, `${id}.b`, ['s1']);
    await store.placeHold(id, `${id}.a`, 'ia', null, T0);
    await store.releaseHold(id, `${id}.a`, { status: 'expired', nowMs: T0 + 60_000, onlyIfOverdue: true });
    await store.placeHold(id, `${id}.b`, 'ib', null, T0 + 60_001);
    expect(await store.settlePaid(id, `${id}.a`)).toBe('sold_out');
    expect(await store.settlePaid(id, `${id}.b`)).toBe('committed');
  });

  it('hands every new hold to the workers in the same script, and lets another consumer reclaim unacknowledged hand-offs', async () => {
    const id = await load();
    await order(id, `${id}.a`, ['s1']);
    await order(id, `${id}.b`, ['s1']);
    await order(id, `${id}.c`, ['s2']);
    await store.placeHold(id, `${id}.a`, 'ia', null, T0);
    await store.placeHold(id, `${id}.a`, 'ia-retry', null, T0 + 1); // on the live hold: handed off to be verified only
    await store.placeHold(id, `${id}.b`, 'ib', null, T0); // refused: no hand-off
    await store.placeHold(id, `${id}.c`, 'ic', null, T0);
    const first = await store.readHandoffs(id, 'worker-1', 10, 100);
    expect(first.map((h) => [h.merchantUid, h.impUid, h.seq, h.expiresAt, h.ride])).toEqual([
      [`${id}.a`, 'ia', 1, T0 + 60_000, false],
      [`${id}.a`, 'ia-retry', 1, T0 + 60_000, true],
      [`${id}.c`, 'ic', 1, T0 + 60_000, false],
    ]);
    // worker-1 dies before acknowledging: nothing new for worker-2 until the entries are idle long enough.
    expect(await store.readHandoffs(id, 'worker-2', 10, 60_000)).toEqual([]);
    await new Promise((r) => setTimeout(r, 150));
    const reclaimed = await store.readHandoffs(id, 'worker-2', 10, 100);
    expect(reclaimed.map((h) => h.id)).toEqual(first.map((h) => h.id));
    await store.ackHandoffs(id, reclaimed.map((h) => h.id));
    await new Promise((r) => setTimeout(r, 150));
    expect(await store.readHandoffs(id, 'worker-3', 10, 100)).toEqual([]);
  });

  it('counts a buyer\'s held and bought tickets against max_per_buyer', async () => {
    const id = await load({ maxPerBuyer: 2 });
    await order(id, `${id}.a`, ['s1'], [], 'fan');
    await order(id, `${id}.b`, ['s2', 's3'], [], 'fan');
    await store.placeHold(id, `${id}.a`, 'ia', null, T0);
    expect(await store.placeHold(id, `${id}.b`, 'ib', null, T0)).toMatchObject({ code: 'BUYER_LIMIT' });
    await store.releaseHold(id, `${id}.a`, { status: 'released', nowMs: T0, onlyIfOverdue: false });
    expect((await store.placeHold(id, `${id}.b`, 'ib2', null, T0)).approved).toBe(true);
  });

  it('answers an order\'s preflight: readiness and the buyer\'s tickets, and with the counters what could still be served', async () => {
    const id = await load();
    await order(id, `${id}.a`, ['s1'], [{ pool: 'p', quantity: 4 }], 'fan');
    await store.placeHold(id, `${id}.a`, 'ia', null, T0);
    expect(await store.orderPreflight(id, 'fan')).toEqual({ state: 'ready', buyerTickets: 5 });
    expect(await store.orderPreflight(id, 'nobody')).toEqual({ state: 'ready', buyerTickets: 0 });
    const counted = await store.orderPreflightWithCounts(id, 'fan');
    expect(counted).toMatchObject({ state: 'ready', buyerTickets: 5 });
    // Two seats and one pool place are left.
    expect(counted.available(['s2', 's3'], [{ pool: 'p', quantity: 1 }])).toBe(true);
    expect(counted.available(['s2', 's3', 's1'], [])).toBe(false);
    expect(counted.available([], [{ pool: 'p', quantity: 2 }])).toBe(false);
    expect(counted.available([], [{ pool: 'elsewhere', quantity: 1 }])).toBe(false);
    expect(await store.orderPreflight(eventId('hs-none'), 'fan')).toEqual({ state: null, buyerTickets: 0 });
  });

  it('answers NOT_READY while an event is not loaded, and keeps a rebuilt state whole', async () => {
    const id = await load();
    await order(id, `${id}.a`, ['s1'], [{ pool: 'p', quantity: 2 }], 'x', 300);
    await store.placeHold(id, `${id}.a`, 'ia', null, T0);
    await redis.del(`{ev:${id}}:meta`);
    expect(await store.placeHold(id, `${id}.a`, 'iz', null, T0)).toMatchObject({ approved: false, code: 'EVENT_NOT_LOADED' });
    expect(await store.createOrder(id, { merchantUid: `${id}.q`, amount: 1, buyerId: 'q', seats: ['s2'], items: [], tickets: 1 })).toBe('not_ready');
    await store.loadEvent({
      id, opensAt: T0, closesAt: null, holdTtlMs: 60_000, maxPerBuyer: null, pools: [{ id: 'p', capacity: 5 }], seats: ['s1', 's2', 's3'],
      orders: [{ merchantUid: `${id}.a`, amount: 300, buyerId: 'x', seats: ['s1'], items: [{ pool: 'p', quantity: 2 }], status: 'held', holdExpiresAt: T0 + 60_000, seq: 1, impUid: 'ia' }],
    }, 'rebuilt');
    expect((await store.availability(id, [{ id: 'p' }]))?.pools[0]).toMatchObject({ held: 2, available: 3 });
    expect(await store.orderState(id, `${id}.a`)).toMatchObject({ status: 'held', seq: 1, expiresAt: T0 + 60_000, impUids: ['ia'] });
    expect(await store.liveHolds(id)).toEqual(new Map([[`${id}.a`, T0 + 60_000]]));
  });

  it('hammered concurrently from many connections, never holds a seat twice or a pool over capacity', async () => {
    const id = await load({ seats: Array.from({ length: 50 }, (_, i) => `s${i}`), pools: [{ id: 'p', capacity: 200 }] });
    const clients = Array.from({ length: 16 }, () => new HoldStore(new Redis(process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379')));
    const specs = Array.from({ length: 2000 }, (_, i) => ({
      uid: `${id}.o${i}`,
      seats: i % 2 ? [`s${i % 50}`, `s${(i * 7) % 50}`].filter((v, k, a) => a.indexOf(v) === k) : [],
      items: i % 2 ? [] : [{ pool: 'p', quantity: 1 + (i % 3) }],
    }));
    for (const s of specs) await order(id, s.uid, s.seats, s.items, `b${s.uid}`);
    const results = await Promise.all(specs.map((s, i) => clients[i % 16]!.placeHold(id, s.uid, `imp${i}`, null, T0)));
    const owners = new Map<string, string>();
    let poolHeld = 0;
    results.forEach((r, i) => {
      if (!r.approved) return;
      for (const seat of specs[i]!.seats) {
        expect(owners.has(seat)).toBe(false);
        owners.set(seat, specs[i]!.uid);
      }
      poolHeld += specs[i]!.items.reduce((n, it) => n + it.quantity, 0);
    });
    expect(poolHeld).toBeLessThanOrEqual(200);
    const a = await store.availability(id, [{ id: 'p' }]);
    expect(a?.seats.held).toBe(owners.size);
    expect(a?.pools[0]?.held).toBe(poolHeld);
    expect(poolHeld).toBeGreaterThan(195);
    for (const c of clients) c.redis.disconnect();
  });
});
