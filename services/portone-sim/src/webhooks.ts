/**
 * Webhook delivery as PortOne V1 does it, with the faults merchants must survive: lost, duplicated,
 * delayed and reordered webhooks, JSON or form bodies, retries on 0/5xx.
 */
import type { SimState, WebhookJob } from './state.ts';
import { post } from './http-post.ts';

const DEFAULT_RETRIES = 5;
const DEFAULT_RETRY_MS = 60_000;
const DEFAULT_TIMEOUT_MS = 30_000;
const DEFAULT_REORDER_MAX_HOLD_MS = 30_000;

/**
 * Sends a webhook according to its faults. Resolves when its first attempt (and the first attempts
 * of its duplicates) completed, so `webhook_before_return` can wait for exactly that; retries go on
 * in the background. Resolves at once for a lost or held-back webhook. Never rejects.
 */
export function dispatchWebhook(state: SimState, job: WebhookJob): Promise<void> {
  if (state.disposed) return Promise.resolve();
  const loss = job.faults.webhook_loss ?? 0;
  if (loss > 0 && Math.random() < loss) {
    state.webhooks.push({
      imp_uid: job.impUid,
      merchant_uid: job.merchantUid,
      status: job.status,
      delivered: false,
      http_status: null,
      attempt: 0,
      copy: 0,
      lost: true,
      at: new Date().toISOString(),
    });
    return Promise.resolve();
  }

  const held = state.held.get(job.impUid);
  if (held !== undefined) {
    // The held-back webhook goes right after this one: the merchant sees them out of order.
    state.held.delete(job.impUid);
    clearTimeout(held.timer);
    const both = deliver(state, job).then(() => deliver(state, held.job));
    state.track(both, job.merchantUid);
    return both;
  }

  if (job.faults.webhook_reorder === true) {
    const maxHold = job.faults.webhook_reorder_max_hold_ms ?? DEFAULT_REORDER_MAX_HOLD_MS;
    // Without a next webhook the held one would be lost; reordering is not loss, so release it late.
    const timer = setTimeout(() => {
      if (state.held.get(job.impUid)?.job !== job) return;
      state.held.delete(job.impUid);
      state.track(deliver(state, job), job.merchantUid);
    }, maxHold);
    timer.unref();
    state.held.set(job.impUid, { job, timer });
    return Promise.resolve();
  }

  const sent = deliver(state, job);
  state.track(sent, job.merchantUid);
  return sent;
}

async function deliver(state: SimState, job: WebhookJob): Promise<void> {
  if (!(await state.pause(job.faults.webhook_delay_ms ?? 0))) return;
  await sendCopy(state, job, 0);
  const duplicates = job.faults.webhook_duplicates ?? 0;
  if (duplicates > 0) {
    // Copies go after the original was answered (PortOne duplicates arrive even after a 200), and
    // together, so a merchant also sees concurrent duplicates.
    const copies: Promise<void>[] = [];
    for (let copy = 1; copy <= duplicates; copy++) copies.push(sendCopy(state, job, copy));
    await Promise.all(copies);
  }
}

async function sendCopy(state: SimState, job: WebhookJob, copy: number): Promise<void> {
  if (!(await attempt(state, job, copy, 1))) return;
  state.track(retryLoop(state, job, copy), job.merchantUid);
}

async function retryLoop(state: SimState, job: WebhookJob, copy: number): Promise<void> {
  const retries = job.faults.webhook_retries ?? DEFAULT_RETRIES;
  const spacing = job.faults.webhook_retry_ms ?? DEFAULT_RETRY_MS;
  for (let n = 2; n <= retries + 1; n++) {
    if (!(await state.pause(spacing))) return;
    if (!(await attempt(state, job, copy, n))) return;
  }
}

/** One POST to the notice URL; resolves true when PortOne would retry it (no answer, or 5xx). */
async function attempt(state: SimState, job: WebhookJob, copy: number, n: number): Promise<boolean> {
  if (state.disposed) return false;
  // V2 webhooks are JSON only, signed.
  const form = job.faults.webhook_format === 'form' && job.sign === undefined;
  const body = form ? formEncode(job.body) : JSON.stringify(job.body);
  const contentType = form ? 'application/x-www-form-urlencoded' : 'application/json';
  const timeout = job.faults.webhook_timeout_ms ?? DEFAULT_TIMEOUT_MS;
  let status = 0;
  try {
    // The answer is read whole, so the connection goes back to the pool; its content does not matter.
    const res = await post(job.noticeUrl, { 'content-type': contentType, ...(job.sign ? job.sign(body) : {}) }, body, timeout, state.signal);
    status = res.status;
  } catch {
    // No answer (refused, reset, timed out): status stays 0, which PortOne retries.
  }
  if (state.disposed) return false;
  const delivered = status >= 200 && status < 300;
  state.webhooks.push({
    imp_uid: job.impUid,
    merchant_uid: job.merchantUid,
    status: job.status,
    delivered,
    http_status: status,
    attempt: n,
    copy,
    lost: false,
    at: new Date().toISOString(),
  });
  return status === 0 || status >= 500;
}

function formEncode(body: Record<string, unknown>): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(body)) {
    if (value === undefined || value === null) continue;
    params.append(key, typeof value === 'object' ? JSON.stringify(value) : String(value));
  }
  return params.toString();
}
