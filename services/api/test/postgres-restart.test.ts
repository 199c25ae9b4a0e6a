/**
 * Postgres restarting kills nothing. On a private cluster (never the shared one): a restart under load,
 * with a session checked out across it, leaves the process alive and answering; while Postgres is down
 * the paths that need it answer 503 NOT_READY (no 500, no stack), confirms go on (Postgres is never on
 * the confirm path), and everything recovers by itself when Postgres is back.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { startPrivatePostgres, http, eventId, impUid, newOrder, waitFor, type PrivatePostgres } from '@dropgate/testkit';
import { startApiStack, type ApiStack } from './support/api-stack.ts';

let pgp: PrivatePostgres;
let stack: ApiStack;

beforeAll(async () => {
  pgp = await startPrivatePostgres();
  stack = await startApiStack({ label: 'pgrestart', databaseUrl: pgp.url.replace(/\/postgres$/, '/dropgate') });
});
afterAll(async () => {
  await stack?.close();
  await pgp?.destroy();
});

async function makeEvent(): Promise<string> {
  const id = eventId('pgr');
  const res = await http(stack.url, 'POST', '/admin/events', {
    id, name: 'Postgres restart', seat_blocks: [{ section: 'A', rows: 20, seats_per_row: 50, price: 1000 }],
    pools: [{ id: 'ga', name: 'GA', capacity: 100_000, price: 500 }],
  }, { admin: true });
  expect(res.status, res.text).toBe(201);
  return id;
}

/** An answer that is either what the caller asked for or a clean 503 NOT_READY; never a 500. */
function expectCleanAnswer(res: { status: number; body: any; text: string }, ok: number) {
  if (res.status === ok) return;
  expect(res.status, res.text).toBe(503);
  expect(res.body).toMatchObject({ code: 'NOT_READY', message: expect.any(String) });
  expect(res.text).not.toMatch(/\bat \S+\.(ts|js):\d+/);
}

describe('a Postgres restart', () => {
  it('under load, with a session checked out across it, kills nothing and the API serves again', async () => {
    const id = await makeEvent();
    let running = true;
    const answers: number[] = [];
    const loops = Array.from({ length: 4 }, async (_, i) => {
      for (let n = 0; running; n++) {
        const res = await http(stack.url, 'POST', `/events/${id}/orders`, { buyer_id: `b${i}-${n}`, items: [{ pool: 'ga', quantity: 1 }] });
        expectCleanAnswer(res, 201);
        answers.push(res.status);
      }
    });
    await waitFor(async () => answers.filter((s) => s === 201).length >= 20, 20_000, 'orders before the restart');

    // A session checked out across the restart (a long transaction): Postgres ends it with 57P01.
    let restarted = false;
    const checkedOut = stack.api.deps.db.connection().execute(async (conn) => {
      await sql`select 1`.execute(conn);
      await waitFor(async () => restarted, 30_000, 'the restart');
      await sql`select 1`.execute(conn);
    }).then(() => null, (error: unknown) => error);

    await pgp.restart();
    restarted = true;
    expect(await checkedOut).toBeInstanceOf(Error);
    const before = answers.length;
    await waitFor(async () => answers.slice(before).filter((s) => s === 201).length >= 20, 30_000, 'orders after the restart');
    running = false;
    await Promise.all(loops);

    expect((await http(stack.url, 'GET', '/healthz')).status).toBe(200);
    await waitFor(async () => (await http(stack.url, 'GET', '/readyz')).status === 200, 30_000, 'ready again');
  });

  it('while down: 503 NOT_READY where Postgres is needed, confirms go on, and it recovers by itself', async () => {
    const id = await makeEvent();
    const early = await newOrder(stack.url, id, { buyer_id: 'early', seats: ['A-1-1'] });

    await pgp.stop('immediate');
    try {
      const started = performance.now();
      const order = await http(stack.url, 'POST', `/events/${id}/orders`, { buyer_id: 'late', seats: ['A-1-2'] });
      expect(order.status, order.text).toBe(503);
      expect(order.body).toMatchObject({ code: 'NOT_READY' });
      expect(order.text).not.toMatch(/\bat \S+\.(ts|js):\d+/);
      expect(performance.now() - started).toBeLessThan(3_000);

      const read = await http(stack.url, 'GET', `/orders/${early.merchant_uid}`, undefined, { admin: true });
      expect(read.status, read.text).toBe(503);
      expect(read.body.code).toBe('NOT_READY');

      const ready = await http(stack.url, 'GET', '/readyz');
      expect(ready.status).toBe(503);
      expect(ready.body.checks.postgres).toBe('unreachable');

      // The storefront's event page and the confirm need only Redis.
      expect((await http(stack.url, 'GET', `/events/${id}`)).status).toBe(200);
      const confirm = await http(stack.url, 'POST', '/portone/v1/confirm', { imp_uid: impUid(), merchant_uid: early.merchant_uid, amount: early.amount });
      expect(confirm.status, confirm.text).toBe(200);
      expect(confirm.body.approved).toBe(true);
    } finally {
      await pgp.start();
    }

    const again = await waitFor(async () => {
      const res = await http(stack.url, 'POST', `/events/${id}/orders`, { buyer_id: 'after', seats: ['A-1-3'] });
      expectCleanAnswer(res, 201);
      return res.status === 201 ? res : null;
    }, 30_000, 'orders after Postgres came back');
    expect(again.body.merchant_uid).toMatch(new RegExp(`^${id}\\.`));
    const detail = await http(stack.url, 'GET', `/orders/${early.merchant_uid}`, undefined, { admin: true });
    expect(detail.status, detail.text).toBe(200);
    expect(detail.body.status).toBe('held');
  });
});
