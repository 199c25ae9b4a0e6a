/**
 * `npm run bench:outcomes`: the worker's settlement throughput. 1,000 held orders are paid at the
 * simulator with their webhooks held back; then all 1,000 webhooks arrive at once, and we time how
 * long the worker takes to turn them into tickets in Postgres (REST re-fetch, Redis commit, ticket
 * transaction), and how long after the last payment the whole drop has settled.
 */
import { startSimulator } from '@dropgate/portone-sim';
import { http, eventId, waitFor } from '@dropgate/testkit';
import { startStack } from '@dropgate/stack';

const N = Number(process.argv[2] ?? 1000);
const sim = await startSimulator({ port: 0, faults: { webhook_loss: 1 } });
const stack = await startStack({ label: 'outcomes', portoneUrl: sim.url, env: { WORKER_CONCURRENCY: '32', LOG_LEVEL: 'silent' } });
try {
  const id = eventId('outcomes');
  await http(stack.url, 'POST', '/admin/events', { id, name: 'Outcomes', pools: [{ id: 'ga', name: 'GA', capacity: N, price: 1000 }] }, { admin: true });
  const imps: { imp: string; muid: string }[] = [];
  for (let i = 0; i < N; i += 50) {
    await Promise.all(Array.from({ length: Math.min(50, N - i) }, async (_, k) => {
      const o = await http(stack.url, 'POST', `/events/${id}/orders`, { buyer_id: `b${i + k}`, items: [{ pool: 'ga', quantity: 1 }] });
      const paid = await sim.pay({ merchant_uid: o.body.merchant_uid, amount: o.body.amount, confirm_url: `${stack.url}/portone/v1/confirm`, notice_url: `${stack.url}/portone/v1/webhook`, outcome: 'paid' });
      imps.push({ imp: paid.payment.imp_uid, muid: o.body.merchant_uid });
    }));
  }
  const db = stack.api.deps.db;
  await waitFor(async () => Number((await db.selectFrom('holds').select((eb) => eb.fn.countAll<string>().as('n')).where('event_id', '=', id).executeTakeFirstOrThrow()).n) === N, 60_000);
  const started = performance.now();
  for (let i = 0; i < imps.length; i += 100) {
    await Promise.all(imps.slice(i, i + 100).map((p) => http(stack.url, 'POST', '/portone/v1/webhook', { imp_uid: p.imp, merchant_uid: p.muid, status: 'paid' })));
  }
  const queued = performance.now();
  await waitFor(async () => Number((await db.selectFrom('orders').select((eb) => eb.fn.countAll<string>().as('n')).where('event_id', '=', id).where('status', '=', 'paid').executeTakeFirstOrThrow()).n) === N, 120_000);
  const done = performance.now();
  const tickets = Number((await db.selectFrom('tickets').select((eb) => eb.fn.countAll<string>().as('n')).where('event_id', '=', id).executeTakeFirstOrThrow()).n);
  console.log(`${N} paid webhooks queued in ${((queued - started) / 1000).toFixed(2)} s; all ${N} orders paid with ${tickets} tickets ${((done - started) / 1000).toFixed(2)} s after the first webhook`);
  console.log(`worker throughput: ${(N / ((done - started) / 1000)).toFixed(0)} paid outcomes per second into Postgres (WORKER_CONCURRENCY 32, one worker process)`);
} finally {
  await stack.close();
  await sim.close();
}
