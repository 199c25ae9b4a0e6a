/**
 * `npm run bench:outcomes [-- N] [--concurrency C]`: the worker's settlement throughput. N orders (default 5,000) are
 * held through the confirm and verified while their payments are still open; then PortOne marks each
 * payment paid, with its webhook held back. Every webhook is posted to the API
 * while the payments queue is paused, so the API's intake is not timed; the queue is resumed and we
 * time how long one worker takes to settle them all: re-fetch each payment from PortOne's REST API
 * (the simulator), commit the hold in Redis, issue the tickets and mark the order paid in Postgres.
 * Settled outcomes per second = N / that time. The API sits idle meanwhile. The simulator answering
 * the worker's REST calls runs in a process of its own (`npm run sim`), as PortOne is remote (measured
 * on 2026-11-30: 1,246 outcomes/s with it in the worker's process, 1,250/s in its own; the worker is
 * the bound either way).
 *
 * `--profile FILE` writes a CPU profile (`.cpuprofile`, for Chrome's DevTools or speedscope) of this
 * process, the worker's, during the measured phase only.
 *
 * The worker's WORKER_CONCURRENCY (`--concurrency`, default 256 here) is how many outcomes the worker has in flight: they share
 * their Postgres statements and transactions (settlement.repository.ts), so many in flight cost a few
 * connections, not one each. Measured on 2026-12-01 (5,000 outcomes): 128 in flight settled
 * 1,395-1,794 a second, 256 settled 2,083-2,166 (full batches of SETTLEMENT_BATCH_MAX, one filling while
 * the other commits: Postgres 266-280 µs an outcome against 322-366), 512 2,098.
 */
import { Queue } from 'bullmq';
import { commandsPer, localPostgresCpu, processCpu, redisCommandStats, redisCpu, startSimProcess } from '@dropgate/drop';
import { http, eventId, waitFor } from '@dropgate/testkit';
import { startStack } from '@dropgate/stack';
import { QueueNames } from '@dropgate/jobs';
import { createRedis } from '@dropgate/redis';
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';

const { values: args, positionals } = parseArgs({ options: { concurrency: { type: 'string', default: '256' }, profile: { type: 'string' } }, allowPositionals: true });
const N = Number(positionals[0] ?? 5000);
const CONCURRENCY = args.concurrency;
const sim = await startSimProcess({ PATH: process.env['PATH'] });
/** The simulator's controls (under /sim); any answer but a 2xx stops the bench. */
async function simControl<T = unknown>(method: 'POST' | 'PUT', path: string, body: unknown): Promise<T> {
  const res = await http(sim.url, method, `/sim${path}`, body);
  if (res.status >= 300) throw new Error(`simulator ${method} /sim${path}: ${res.status} ${res.text}`);
  return res.body as T;
}
// Every webhook held back: the bench posts them itself while the payments queue is paused.
await simControl('PUT', '/faults', { webhook_loss: 1 });
const stack = await startStack({ label: 'outcomes', portoneUrl: sim.url, env: { WORKER_CONCURRENCY: CONCURRENCY, LOG_LEVEL: 'silent' } });
const bull = createRedis(stack.config, { name: 'dropgate-bench-outcomes' });
const payments = new Queue(QueueNames.payments, { connection: bull, prefix: stack.prefix });
try {
  const id = eventId('outcomes');
  await http(stack.url, 'POST', '/admin/events', { id, name: 'Outcomes', pools: [{ id: 'ga', name: 'GA', capacity: N, price: 1000 }] }, { admin: true });
  const imps: { imp: string; muid: string }[] = [];
  for (let i = 0; i < N; i += 50) {
    await Promise.all(Array.from({ length: Math.min(50, N - i) }, async (_, k) => {
      const o = await http(stack.url, 'POST', `/events/${id}/orders`, { buyer_id: `b${i + k}`, items: [{ pool: 'ga', quantity: 1 }] });
      const paid = await simControl<{ payment: { imp_uid: string } }>('POST', '/v1/payments', { merchant_uid: o.body.merchant_uid, amount: o.body.amount, confirm_url: `${stack.url}/portone/v1/confirm`, notice_url: `${stack.url}/portone/v1/webhook`, outcome: 'abandoned' });
      imps.push({ imp: paid.payment.imp_uid, muid: o.body.merchant_uid });
    }));
  }
  const db = stack.api.deps.db;
  const count = async (table: 'holds' | 'orders' | 'tickets', paidOnly = false) => {
    let q = db.selectFrom(table).select((eb) => eb.fn.countAll<string>().as('n')).where('event_id', '=', id);
    if (paidOnly) q = q.where('status' as never, '=', 'paid' as never);
    return Number((await q.executeTakeFirstOrThrow()).n);
  };
  await waitFor(async () => (await count('holds')) === N, 120_000, 'every hold recorded');
  // The confirms' verification jobs run first: the measured phase holds the webhooks' outcomes only.
  await waitFor(async () => {
    const c = await payments.getJobCounts('waiting', 'active', 'delayed', 'prioritized');
    return (c.waiting ?? 0) + (c.active ?? 0) + (c.delayed ?? 0) + (c.prioritized ?? 0) === 0;
  }, 120_000, 'verifications done');
  for (let i = 0; i < imps.length; i += 100) {
    await Promise.all(imps.slice(i, i + 100).map((p) => simControl('PUT', `/v1/payments/${p.imp}/status`, { status: 'paid' })));
  }
  await payments.pause();
  for (let i = 0; i < imps.length; i += 100) {
    await Promise.all(imps.slice(i, i + 100).map((p) => http(stack.url, 'POST', '/portone/v1/webhook', { imp_uid: p.imp, merchant_uid: p.muid, status: 'paid' })));
  }
  await waitFor(async () => ((await payments.getJobCounts('waiting')).waiting ?? 0) + ((await payments.getJobCounts('paused')).paused ?? 0) >= N, 60_000, 'every webhook queued');
  const load = loadavg()[0]!.toFixed(2);
  const profiler = args.profile ? new Session() : null;
  if (profiler) {
    profiler.connect();
    await profiler.post('Profiler.enable');
    await profiler.post('Profiler.start');
  }
  const cpu = async () => {
    const own = process.cpuUsage();
    return { worker: (own.user + own.system) / 1e6, simulator: processCpu(sim.pid), redis: (await redisCpu(bull)) ?? 0, postgres: localPostgresCpu() ?? 0 };
  };
  const commandsBefore = await redisCommandStats(bull);
  const cpuBefore = await cpu();
  const started = performance.now();
  await payments.resume();
  await waitFor(async () => (await count('orders', true)) === N, 300_000, 'every order paid');
  const done = performance.now();
  const cpuAfter = await cpu();
  const commandsAfter = await redisCommandStats(bull);
  if (profiler) {
    const { profile } = await profiler.post('Profiler.stop');
    writeFileSync(args.profile!, JSON.stringify(profile));
    profiler.disconnect();
    console.log(`CPU profile of the measured phase: ${args.profile}`);
  }
  const tickets = await count('tickets');
  const seconds = (done - started) / 1000;
  console.log(`${N} queued paid outcomes settled in ${seconds.toFixed(2)} s: all ${N} orders paid with ${tickets} tickets (load average ${load} at the start, ${loadavg()[0]!.toFixed(2)} at the end)`);
  console.log(`worker throughput: ${(N / seconds).toFixed(0)} settled paid outcomes per second into Postgres (WORKER_CONCURRENCY ${CONCURRENCY}, one worker; the simulator in its own process)`);
  const per = (Object.keys(cpuBefore) as (keyof typeof cpuBefore)[]).map((k) => [k, Math.round(((cpuAfter[k] - cpuBefore[k]) * 1e6) / N)] as const);
  const total = per.reduce((a, [, us]) => a + us, 0);
  console.log(`CPU per settled outcome: ${total} µs: ${per.map(([k, us]) => `${k} ${us}`).join(', ')} (the worker's share is this process's, the idle API's included)`);
  if (commandsBefore && commandsAfter) console.log(`Redis per settled outcome (INFO commandstats, the top commands by time): ${commandsPer(commandsBefore, commandsAfter, N)}`);
} finally {
  await payments.close();
  bull.disconnect();
  await stack.close();
  await sim.close();
}
