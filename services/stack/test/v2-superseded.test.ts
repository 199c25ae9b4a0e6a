/**
 * A V2 attempt the buyer replaced by another one (a declined card paid again on the same order) is
 * verified after the newer attempt exists. V2's `GET /payments/{paymentId}` shows only the current
 * attempt, so the older one's lookup finds another transactionId: PortOne knows the payment, and its
 * current attempt is what says how the order stands. Found in a `npm run drop -- --portone v2
 * --failed-then-paid 0.2` (attack round 23B): the late verification released a hold whose order
 * PortOne showed paid, the seats were sold to another buyer, and the payment was refunded. The API, a
 * worker, real Redis and Postgres, and the simulator's V2 mode over HTTP.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Simulator } from '@dropgate/portone-sim';
import { waitFor } from '@dropgate/testkit';
import type { TestStack } from '@dropgate/stack';
import { jobIds } from '@dropgate/jobs';
import { acquireLock, eventKeys, releaseLock } from '@dropgate/redis';
import { shop } from './support/shop.ts';
import { startV2Stack, v2Keys } from './support/portone-v2.ts';

let sim: Simulator;
let stack: TestStack;
beforeAll(async () => {
  ({ sim, stack } = await startV2Stack(v2Keys('superseded'), { label: 'superseded' }));
});
afterAll(async () => {
  await stack?.close();
  await sim?.close();
});

const { event, order, detail, orderIs, queuesIdle } = shop(() => stack, { prefix: 'sup', section: 'S' });
const payments = () => stack.api.deps.queues.payments;
const confirmUrl = () => `${stack.url}/portone/v2/confirm`;
const webhookUrl = () => `${stack.url}/portone/v2/webhook`;
const statusChanges = async (muid: string) => (await stack.api.deps.db.selectFrom('order_events').select('data')
  .where('merchant_uid', '=', muid).where('type', '=', 'status').orderBy('id').execute()).map((r) => r.data as Record<string, unknown>);

describe('a superseded V2 attempt verified late', () => {
  it('acts on the current attempt PortOne shows (paid: the hold is committed), never releases the hold as a payment PortOne does not know', async () => {
    const id = await event({ seats: 1 });
    const o = await order(id, { buyer_id: 'buyer', seats: ['S-1-1'], portone_api: 'v2' });
    const muid = o.merchant_uid;
    const unverifiedBefore = stack.worker!.ctx.metrics.unverifiedPayments;
    const countBefore = (await unverifiedBefore.get()).values.reduce((n, v) => n + v.value, 0);
    // Both verifications become jobs (the order's lock is busy through the confirms) and wait.
    await payments().pause();
    const lockKey = eventKeys(id).settleLock(muid);
    const token = await acquireLock(stack.redis, lockKey, 60_000);
    expect(token).not.toBeNull();
    let first: { transaction_id: string };
    let second: { transaction_id: string };
    let firstVerify: Awaited<ReturnType<typeof waitForVerify>>;
    let secondVerify: Awaited<ReturnType<typeof waitForVerify>>;
    const waitForVerify = (seq: number, tx: string) =>
      waitFor(() => payments().getJob(jobIds.verifyPayment(muid, seq, `v2.${tx}`)), 15_000, `the verification of ${tx} queued`);
    try {
      // The card is declined (its Failed webhook lost); the buyer pays again on the same order, and the
      // second attempt rides the same hold. The PG reports it failed too (that webhook arrives).
      first = await sim.payV2({ payment_id: muid, amount: o.amount, confirm_url: confirmUrl(), webhook_url: webhookUrl(), outcome: 'failed', faults: { webhook_loss: 1 } });
      second = await sim.payV2({ payment_id: muid, amount: o.amount, confirm_url: confirmUrl(), webhook_url: webhookUrl(), outcome: 'failed', faults: { webhook_loss: 1 } });
      expect(sim.ledger({ merchant_uid: muid }).confirms.map((c) => c.http_status)).toEqual([200, 200]);
      const { seq } = (await stack.store.orderState(id, muid))!;
      firstVerify = await waitForVerify(seq, first.transaction_id);
      secondVerify = await waitForVerify(seq, second.transaction_id);
      // The first attempt's verification is late (a busy worker): taken out, queued again below.
      await firstVerify.remove();
    } finally {
      await releaseLock(stack.redis, lockKey, token!);
      await payments().resume();
    }
    // The second attempt's verification finds it failed: taken off the hold, which the first still rides.
    await waitFor(() => secondVerify.isCompleted(), 15_000, 'the second attempt verified');
    expect((await detail(muid)).payments).toEqual([expect.objectContaining({ imp_uid: `v2.${second.transaction_id}`, status: 'failed' })]);
    await queuesIdle();
    expect((await stack.store.orderState(id, muid))).toMatchObject({ status: 'held', impUids: [`v2.${first.transaction_id}`] });
    // The PG changes its mind: the second attempt is paid, its Paid webhook lost.
    sim.setPaymentStatus(`v2.${second.transaction_id}`, 'paid');
    // Now the first attempt's verification runs: PortOne's current attempt of the payment is the paid one.
    await payments().add('verify', firstVerify.data, { jobId: firstVerify.id! });
    const d = await orderIs(muid, 'paid');
    expect(d.tickets).toEqual([expect.objectContaining({ seat: 'S-1-1' })]);
    await queuesIdle();
    // Committed from the hold it had all along: never released, nothing refunded.
    expect((await statusChanges(muid)).map((c) => `${String(c['from'])}>${String(c['to'])}`)).toEqual(['pending>held', 'held>paid']);
    expect(sim.ledger({ merchant_uid: muid }).cancels).toEqual([]);
    // A superseded attempt is no forged confirm.
    expect((await unverifiedBefore.get()).values.reduce((n, v) => n + v.value, 0)).toBe(countBefore);
  });
});
