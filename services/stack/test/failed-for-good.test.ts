/**
 * A job that no worker will run again (its attempts used up, or failed for a reason no retry changes)
 * is counted in dropgate_jobs_failed_for_good_total, which DropgateJobsFailedForGood alerts on: a
 * payment nobody acts on again needs an operator. Here a paid payment whose order Postgres does not
 * have (round 18 made one with a stalled API before the orphan fix).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UnrecoverableError } from 'bullmq';
import { startSimulator, type Simulator } from '@dropgate/portone-sim';
import { eventId, http, waitFor } from '@dropgate/testkit';
import { startStack, type TestStack } from '@dropgate/stack';
import type { PaymentOutcomeJob } from '@dropgate/jobs';
import { failedForGood } from '@dropgate/worker';

let sim: Simulator;
let stack: TestStack;
beforeAll(async () => {
  sim = await startSimulator({ port: 0 });
  stack = await startStack({ label: 'deadjobs', portoneUrl: sim.url });
});
afterAll(async () => {
  await stack?.close();
  await sim?.close();
});

describe('jobs failed for good', () => {
  it('are the last attempt of a job that retries, or any failure no retry changes; a one-try job that failed is not', () => {
    expect(failedForGood({ attemptsMade: 25, opts: { attempts: 25 } }, new Error('PortOne down'))).toBe(true);
    expect(failedForGood({ attemptsMade: 3, opts: { attempts: 25 } }, new Error('PortOne down'))).toBe(false);
    expect(failedForGood({ attemptsMade: 1, opts: { attempts: 25 } }, new UnrecoverableError('unknown order'))).toBe(true);
    expect(failedForGood({ attemptsMade: 1, opts: { attempts: 1 } }, new Error('refund refused; the next round asks again'))).toBe(false);
  });

  it('a paid payment whose order Postgres does not have is counted, and the job is not retried', async () => {
    const id = eventId('dead');
    const made = await http(stack.url, 'POST', '/admin/events', { id, name: 'Dead jobs', pools: [{ id: 'ga', name: 'GA', capacity: 5, price: 1_000 }] }, { admin: true });
    expect(made.status, made.text).toBe(201);
    const merchantUid = `${id}.nosuchorder01`;
    const paid = await sim.pay({ merchant_uid: merchantUid, amount: 1_000, outcome: 'paid' });
    const impUid = paid.payment.imp_uid;
    const data: PaymentOutcomeJob = { eventId: id, merchantUid, impUid, hint: 'paid', source: 'webhook', receivedAt: Date.now() };
    const job = await stack.api.deps.queues.payments.add('outcome', data, { jobId: `dead-${impUid}` });
    await waitFor(async () => (await job.getState()) === 'failed' || null, 20_000, 'the job failed');
    expect((await stack.api.deps.queues.payments.getJob(job.id!))?.attemptsMade).toBe(1);
    const text = await stack.worker!.metrics();
    expect(text).toMatch(/dropgate_jobs_failed_for_good_total\{queue="payments"\} 1\b/);
  });
});
