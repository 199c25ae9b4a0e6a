/**
 * After Redis lost its data every active event is due for a rebuild; the worker's guard rebuilds a
 * few at once (GUARD_REBUILDS_AT_ONCE), not one after another: an event late in the list answered
 * NOT_READY for as long as every event before it took (attack round 15). Seen here by the events'
 * rebuild locks, held at the same time, while one guard pass rebuilds three lost events.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventId, http } from '@dropgate/testkit';
import { eventKeys } from '@dropgate/redis';
import { startStack, type TestStack } from '@dropgate/stack';

let stack: TestStack;
beforeAll(async () => { stack = await startStack({ label: 'guardpar', timers: false }); });
afterAll(async () => { await stack?.close(); });

describe('the guard after Redis lost several events', () => {
  it('rebuilds them in one pass, several at once', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const id = eventId('gp');
      const res = await http(stack.url, 'POST', '/admin/events', { id, name: 'Lost', seat_blocks: [{ section: 'G', rows: 100, seats_per_row: 200, price: 1_000 }] }, { admin: true });
      expect(res.status, res.text).toBe(201);
      ids.push(id);
    }
    // Every key of each event, as a Redis that lost its data.
    for (const id of ids) await stack.store.deleteEvent(id);
    // The first pass notes them (an event being created is in Postgres before Redis); the second rebuilds.
    expect(await stack.worker!.guard()).toEqual([]);
    let most = 0;
    let watching = true;
    const watch = (async () => {
      while (watching) {
        const held = await Promise.all(ids.map((id) => stack.redis.exists(eventKeys(id).rebuildLock)));
        most = Math.max(most, held.reduce((n, x) => n + x, 0));
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    const rebuilt = await stack.worker!.guard();
    watching = false;
    await watch;
    expect([...rebuilt].sort()).toEqual([...ids].sort());
    expect(most).toBeGreaterThanOrEqual(2);
    for (const id of ids) expect(await stack.store.stampState(id)).toBe('whole');
  }, 60_000);
});
