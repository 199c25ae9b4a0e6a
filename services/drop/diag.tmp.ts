import { createTestDatabase } from '@dropgate/testkit';
import { openTarget, runDrop } from './src/index.ts';
import { smallOptions, TEST_ENV } from './test/helpers.ts';
const db = await createTestDatabase('diag');
const target = await openTarget({ env: TEST_ENV, apiUrl: null, simUrl: null, budgetMs: 3000, database: 'x', databaseUrl: db.url, freshDatabase: false });
const ids: string[] = [];
const runs = [{ webhookLoss: 1 }, { webhookDuplicates: 1 }, { webhookDelayMs: 2000 }, { webhookBeforeReturn: 1 }].map(async (o) => {
  const r = await runDrop({ ...smallOptions(o), settleTimeout: 30 }, { env: TEST_ENV, target });
  ids.push(r.eventId);
  console.log(JSON.stringify(o), 'settled', r.summary.timing.settled, r.summary.timing.pending, 'ok', r.summary.ok, 'ms', r.summary.timing.total_ms);
});
await Promise.all(runs);
const prefix = /queue prefix (\{[^}]+\})/.exec(target.description)![1]!;
const { Queue } = await import('bullmq');
for (const name of ['payments', 'holds', 'maintenance']) {
  const q = new Queue(name, { connection: { url: 'redis://127.0.0.1:6379' } as never, prefix });
  const jobs = await q.getJobs(['delayed', 'waiting', 'active', 'failed']);
  for (const j of jobs.slice(0, 12)) console.log(name, j.id, j.name, 'attempts', j.attemptsMade, 'reason', j.failedReason, JSON.stringify(j.data).slice(0, 160));
  await q.close();
}
await target.close(ids);
await db.drop();
