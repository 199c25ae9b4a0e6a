/**
 * Signed V2 requests whose body is not what the endpoint takes (attack round 26A): a signed body
 * `null` was never answered (null meant "already answered"), and a signed 2024-01-01 webhook
 * (`{payment_id, tx_id, status}`) replayed to the confirm URL was approved as a confirm with no amount
 * (Standard Webhooks signatures do not name the endpoint). Real Redis and Postgres.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Simulator } from '@dropgate/portone-sim';
import { signWebhook } from '@dropgate/testkit';
import type { TestStack } from '@dropgate/stack';
import { request } from 'undici';
import { shop } from './support/shop.ts';
import { startV2Stack, v2Keys } from './support/portone-v2.ts';

const keys = v2Keys('signedbodies');
let sim: Simulator;
let stack: TestStack;
beforeAll(async () => {
  ({ sim, stack } = await startV2Stack(keys, { label: 'signedbodies' }));
});
afterAll(async () => {
  await stack?.close();
  await sim?.close();
});
const { event, order, availability } = shop(() => stack, { prefix: 'sb', section: 'S' });

/** POSTs `body` signed with the store's secret; an answer that does not come in 3 s fails the test. */
async function signedPost(path: string, body: string) {
  const res = await request(new URL(path, stack.url), {
    method: 'POST', body, headers: { 'content-type': 'application/json', ...signWebhook(keys.secret, body) }, headersTimeout: 3_000, bodyTimeout: 3_000,
  });
  return { status: res.statusCode, body: (await res.body.json()) as Record<string, unknown> };
}

describe('signed V2 requests', () => {
  it('a signed body `null` is answered: 400 from the confirm, 200 ignored from the webhook', async () => {
    const confirm = await signedPost('/portone/v2/confirm', 'null');
    expect(confirm.status).toBe(400);
    expect(confirm.body['code']).toBe('BAD_REQUEST');
    expect((await signedPost('/portone/v2/webhook', ' null ')).status).toBe(200);
  });

  it('a signed 2024-01-01 webhook replayed to the confirm URL is not a confirm: 400, nothing held', async () => {
    const id = await event({ seats: 1 });
    const o = await order(id, { buyer_id: 'x', seats: ['S-1-1'], portone_api: 'v2' });
    const body = JSON.stringify({ payment_id: o.merchant_uid, tx_id: 'tx-from-a-webhook', status: 'Failed' });
    const r = await signedPost('/portone/v2/confirm', body);
    expect(r.status).toBe(400);
    expect(r.body['code']).toBe('BAD_REQUEST');
    expect((await availability(id)).seats).toMatchObject({ held: 0, available: 1 });
  });
});
