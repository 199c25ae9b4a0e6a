/**
 * Invariant 5 for the hold hand-off: a worker process killed (SIGKILL) while persisting holds leaves
 * its jobs to run again, and the result is the same as if it had never died.
 *
 * The worker records a batch of holds in one go as it relays their hand-offs, faster than a test can
 * catch it half-way; so the test holds the settlement locks of the last hundred orders (as a payment
 * outcome being settled would), lets the worker record the other three hundred, and kills it while
 * the hundred wait for their locks (recordings under way, or queued as jobs). With the locks given
 * back, a second worker finishes them: the hand-offs the first never acknowledged are claimed again,
 * its queued jobs run again.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { http, eventId, impUid, waitFor } from '@dropgate/testkit';
import { startStack, type TestStack } from '@dropgate/stack';
import { acquireLock, eventKeys, releaseLock } from '@dropgate/redis';
import { compileCacheEnv } from '@dropgate/config';

let stack: TestStack;
const children: ChildProcess[] = [];
beforeAll(async () => { stack = await startStack({ label: 'wkill', worker: false, env: { JOB_LOCK_MS: '1000' } }); });
afterAll(async () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  await stack?.close();
});

function spawnWorker(): ChildProcess {
  const child = spawn(process.execPath, ['services/worker/src/main.ts'], {
    env: {
      PATH: process.env.PATH ?? '',
      ...compileCacheEnv(),
      DATABASE_URL: stack.config.databaseUrl,
      REDIS_URL: stack.config.redisUrl,
      QUEUE_PREFIX: stack.prefix,
      JOB_LOCK_MS: '1000',
      WORKER_CONCURRENCY: '8',
      WORKER_METRICS_PORT: '0',
      LOG_LEVEL: 'silent',
      PORTONE_API_URL: 'http://127.0.0.1:9',
      PORTONE_IMP_KEY: 'k',
      PORTONE_IMP_SECRET: 's',
      SWEEP_INTERVAL_MS: '60000',
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  children.push(child);
  return child;
}

describe('worker killed while persisting', () => {
  it('runs the interrupted jobs again with the same result', async () => {
    const id = eventId('wk');
    const N = 400;
    expect((await http(stack.url, 'POST', '/admin/events', { id, name: 'Kill', seat_blocks: [{ section: 'K', rows: 20, seats_per_row: 20, price: 100 }] }, { admin: true })).status).toBe(201);
    const orders: string[] = [];
    for (let r = 1; r <= 20; r++) {
      const batch = await Promise.all(Array.from({ length: 20 }, (_, i) => http(stack.url, 'POST', `/events/${id}/orders`, { buyer_id: `b-${r}-${i}`, seats: [`K-${r}-${i + 1}`] })));
      for (const o of batch) {
        const c = await http(stack.url, 'POST', '/portone/v1/confirm', { imp_uid: impUid(), merchant_uid: o.body.merchant_uid, amount: o.body.amount });
        expect(c.status).toBe(200);
        orders.push(o.body.merchant_uid);
      }
    }
    const db = stack.api.deps.db;
    const count = async () => Number((await db.selectFrom('holds').select((eb) => eb.fn.countAll<string>().as('n')).where('event_id', '=', id).executeTakeFirstOrThrow()).n);
    expect(await count()).toBe(0);

    const blocked = orders.slice(N - 100);
    const keys = blocked.map((m) => eventKeys(id).settleLock(m));
    const tokens = await Promise.all(keys.map((k) => acquireLock(stack.redis, k, 120_000)));
    expect(tokens.every((t) => t !== null)).toBe(true);

    const first = spawnWorker();
    await waitFor(async () => (await count()) === N - blocked.length, 30_000, 'the first worker to record every hold it may');
    first.kill('SIGKILL');
    await new Promise((r) => first.once('exit', r));
    const atKill = await count();
    expect(atKill).toBe(N - blocked.length);
    await Promise.all(keys.map((k, i) => releaseLock(stack.redis, k, tokens[i]!)));

    spawnWorker();
    await waitFor(async () => (await count()) === N, 60_000, 'every hold to be recorded after the restart');
    const queue = stack.api.deps.queues.holds;
    await waitFor(async () => {
      const c = await queue.getJobCounts('waiting', 'active', 'delayed', 'failed');
      return c.waiting === 0 && c.active === 0 && c.delayed === 0 ? c : null;
    }, 30_000, 'the holds queue to drain');
    expect((await queue.getJobCounts('failed')).failed).toBe(0);

    const holds = await db.selectFrom('holds').select(['merchant_uid', 'status', 'seq']).where('event_id', '=', id).execute();
    expect(new Set(holds.map((h) => h.merchant_uid))).toEqual(new Set(orders));
    expect(holds.every((h) => h.status === 'live' && h.seq === 1)).toBe(true);
    const held = await db.selectFrom('orders').select('merchant_uid').where('event_id', '=', id).where('status', '=', 'held').execute();
    expect(held).toHaveLength(N);
    // Exactly one "hold_recorded" log entry per order: the re-run changed nothing twice.
    const logged = await db.selectFrom('order_events').select(['merchant_uid', (eb) => eb.fn.countAll<string>().as('n')])
      .where('event_id', '=', id).where('type', '=', 'hold_recorded').groupBy('merchant_uid').execute();
    expect(logged).toHaveLength(N);
    expect(logged.every((l) => Number(l.n) === 1)).toBe(true);
  });
});
