/**
 * A simulator that speaks PortOne V1 and V2 (signed webhooks, the V2 REST API behind a secret) and a
 * stack wired to it, for the test files that drive V2.
 */
import { startSimulator, type Simulator } from '@dropgate/portone-sim';
import { newWebhookSecret, rand, type TestClock } from '@dropgate/testkit';
import { startStack, type TestStack } from '@dropgate/stack';

export interface V2Keys {
  /** The Standard Webhooks secret both sides share. */
  secret: string;
  storeId: string;
  apiSecret: string;
}

/** Fresh keys for one test file. */
export function v2Keys(label: string): V2Keys {
  return { secret: newWebhookSecret(), storeId: `store-${label}-test`, apiSecret: rand(24) };
}

/** Starts the simulator with `keys`, then a stack using it for V1 and V2 (`env` on top). */
export async function startV2Stack(keys: V2Keys, opts: { label: string; clock?: TestClock; env?: Record<string, string>; timers?: boolean }): Promise<{ sim: Simulator; stack: TestStack }> {
  const sim = await startSimulator({ port: 0, webhookSecret: keys.secret, storeId: keys.storeId, v2ApiSecret: keys.apiSecret, faults: { webhook_retry_ms: 50 } });
  const stack = await startStack({
    label: opts.label, portoneUrl: sim.url, ...(opts.clock ? { clock: opts.clock } : {}), ...(opts.timers === false ? { timers: false } : {}),
    env: {
      PORTONE_V2_API_URL: sim.url, PORTONE_V2_API_SECRET: keys.apiSecret, PORTONE_V2_STORE_ID: keys.storeId, PORTONE_WEBHOOK_SECRET: keys.secret,
      ...opts.env,
    },
  });
  return { sim, stack };
}
