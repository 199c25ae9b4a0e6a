/**
 * The worker records an approved hold in Postgres as it relays the hold's hand-off, without a BullMQ
 * `holds` job (a job per hold was about half of Redis's work for each approved confirm). A recording
 * it cannot finish within INLINE_BUDGET_MS (here: the order's settlement lock is busy, as while a
 * payment outcome is being settled) becomes a `holds` job, which records the hold once: the
 * recording still under way and the job meet on the order's lock and the hold's id. With
 * HOLDS_PER_SECOND set, every recording goes through the rate-limited queue, as before.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventId, http, impUid, waitFor } from '@dropgate/testkit';
import { jobIds } from '@dropgate/jobs';
import { acquireLock, eventKeys } from '@dropgate/redis';
import { startStack, type TestStack } from '@dropgate/stack';
import { INLINE_BUDGET_MS } from '@dropgate/worker';

let stack: TestStack;
let limited: TestStack;
beforeAll(async () => {
  [stack, limited] = await Promise.all([
    startStack({ label: 'relay', env: { PORTONE_API_URL: 'http://127.0.0.1:9' } }),
    startStack({ label: 'relay_limited', env: { PORTONE_API_URL: 'http://127.0.0.1:9', HOLDS_PER_SECOND: '1000' } }),
  ]);
});
afterAll(async () => {
  await Promise.all([stack?.close(), limited?.close()]);
});

/** A new event of `seats` seats (row 1 of section R) on `s`. */
async function event(s: TestStack, seats: number): Promise<string> {
  const id = eventId('relay');
  const res = await http(s.url, 'POST', '/admin/events', { id, name: 'Relay', seat_blocks: [{ section: 'R', rows: 1, seats_per_row: seats, price: 100 }] }, { admin: true });
  expect(res.status, res.text).toBe(201);
  return id;
}

/** An order for seat R-1-`n`, approved by its confirm (a hold and its hand-off). */
async function approvedOrder(s: TestStack, id: string, n: number, beforeConfirm?: (merchantUid: string) => Promise<void>): Promise<string> {
  const o = await http(s.url, 'POST', `/events/${id}/orders`, { buyer_id: `b-${n}`, seats: [`R-1-${n}`] });
  expect(o.status, o.text).toBe(201);
  await beforeConfirm?.(o.body.merchant_uid);
  const c = await http(s.url, 'POST', '/portone/v1/confirm', { imp_uid: impUid(), merchant_uid: o.body.merchant_uid, amount: o.body.amount });
  expect(c.status, c.text).toBe(200);
  return o.body.merchant_uid as string;
}

async function holdsOf(s: TestStack, merchantUid: string) {
  return s.api.deps.db.selectFrom('holds').select(['status', 'seq']).where('merchant_uid', '=', merchantUid).execute();
}

async function recordedLogEntries(s: TestStack, merchantUid: string): Promise<number> {
  const rows = await s.api.deps.db.selectFrom('order_events').select('id').where('merchant_uid', '=', merchantUid).where('type', '=', 'hold_recorded').execute();
  return rows.length;
}

/** Until `n` holds of the event are in Postgres and no recording job is left to run. */
async function relayed(s: TestStack, id: string, n: number): Promise<void> {
  await waitFor(async () => {
    if ((await s.api.deps.db.selectFrom('holds').select('hold_id').where('event_id', '=', id).execute()).length < n) return false;
    const c = await s.api.deps.queues.holds.getJobCounts('waiting', 'active', 'delayed', 'prioritized');
    return Object.values(c).every((n) => n === 0);
  }, 20_000, 'the hand-offs relayed and every recording job done');
}

describe('recording holds as their hand-offs are relayed', () => {
  it('records an approved hold without a holds job', async () => {
    const id = await event(stack, 3);
    const muids = [await approvedOrder(stack, id, 1), await approvedOrder(stack, id, 2)];
    await relayed(stack, id, muids.length);
    for (const m of muids) {
      expect(await holdsOf(stack, m)).toEqual([{ status: 'live', seq: 1 }]);
      expect(await recordedLogEntries(stack, m)).toBe(1);
      expect(await stack.api.deps.queues.holds.getJob(jobIds.persistHold(m, 1))).toBeUndefined();
    }
  });

  it('queues a holds job for a recording that waits past its budget, and the hold is recorded once', async () => {
    const id = await event(stack, 2);
    // Another settlement of the order holds its lock for longer than the relay waits (the relay may
    // take up to a second to list a new event, then waits INLINE_BUDGET_MS).
    const lockedFor = INLINE_BUDGET_MS + 2_000;
    const m = await approvedOrder(stack, id, 1, async (muid) => {
      expect(await acquireLock(stack.redis, eventKeys(id).settleLock(muid), lockedFor)).not.toBeNull();
    });
    const job = await waitFor(() => stack.api.deps.queues.holds.getJob(jobIds.persistHold(m, 1)), 10_000, 'the recording queued as a job');
    expect(job.data).toMatchObject({ eventId: id, merchantUid: m, seq: 1 });
    await relayed(stack, id, 1);
    expect(await job.getState()).toBe('completed');
    expect(await holdsOf(stack, m)).toEqual([{ status: 'live', seq: 1 }]);
    expect(await recordedLogEntries(stack, m)).toBe(1);
  });

  it('with HOLDS_PER_SECOND set, records every hold through the rate-limited queue', async () => {
    const id = await event(limited, 2);
    const m = await approvedOrder(limited, id, 1);
    await relayed(limited, id, 1);
    expect(await (await limited.api.deps.queues.holds.getJob(jobIds.persistHold(m, 1)))?.getState()).toBe('completed');
    expect(await holdsOf(limited, m)).toEqual([{ status: 'live', seq: 1 }]);
  });
});
