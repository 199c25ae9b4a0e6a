/**
 * Creating an event loads it into Redis under the event's rebuild lock (issue 12). Without it, a
 * worker's guard that finds the new event in Postgres before its Redis state, and rebuilds it, could
 * take holds on its rebuilt state that the creation's older snapshot then wipes: places sold twice.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { http, eventId, impUid, newOrder, waitFor } from '@dropgate/testkit';
import { loadSnapshot } from '@dropgate/db';
import { startApiStack, type ApiStack } from './support/api-stack.ts';

let stack: ApiStack;
beforeAll(async () => { stack = await startApiStack({ label: 'create_lock' }); });
afterAll(async () => { await stack?.close(); });

describe('event creation and a concurrent rebuild', () => {
  it('waits for the rebuild lock, and keeps the state a rebuild loaded meanwhile (its holds stay)', async () => {
    const id = eventId('lock');
    // A rebuild holds the event's lock from before the event exists in Redis.
    const token = await stack.store.lockRebuild(id, 60_000);
    expect(token).not.toBeNull();
    const creating = http(stack.url, 'POST', '/admin/events', { id, name: 'Lock', pools: [{ id: 'ga', name: 'GA', capacity: 2, price: 1000 }] }, { admin: true });
    let answered = false;
    void creating.then(() => { answered = true; });
    const db = stack.api.deps.db;
    await waitFor(() => db.selectFrom('events').select('id').where('id', '=', id).executeTakeFirst(), 10_000, 'the event in Postgres');
    // The rebuild loads the event from Postgres, and a buyer holds both places on that state.
    await stack.store.loadEvent((await loadSnapshot(db, id))!, 'rebuild');
    const o = await newOrder(stack.url, id, { buyer_id: 'b1', items: [{ pool: 'ga', quantity: 2 }] });
    const confirm = await http(stack.url, 'POST', '/portone/v1/confirm', { imp_uid: impUid(), merchant_uid: o.merchant_uid, amount: o.amount });
    expect(confirm.status, confirm.text).toBe(200);
    // The creation is still waiting for the lock; once it is released it finishes without reloading.
    expect(answered).toBe(false);
    expect(await stack.store.unlockRebuild(id, token!)).toBe(true);
    const created = await creating;
    expect(created.status, created.text).toBe(201);
    const availability = (await http(stack.url, 'GET', `/events/${id}`)).body.availability;
    expect(availability.pools[0]).toMatchObject({ capacity: 2, held: 2, available: 0 });
    const second = await newOrder(stack.url, id, { buyer_id: 'b2', items: [{ pool: 'ga', quantity: 1 }] });
    const refused = await http(stack.url, 'POST', '/portone/v1/confirm', { imp_uid: impUid(), merchant_uid: second.merchant_uid, amount: second.amount });
    expect(refused.body.code).toBe('SOLD_OUT');
  });
});
