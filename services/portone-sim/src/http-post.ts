/**
 * The simulator's outbound POST (confirm calls and webhooks): an undici `Pool` per origin, keep-alive,
 * with one deadline for the whole exchange (headers and body) and the state's abort signal. A drop
 * sends one confirm call per payment window, and the simulator shares the machine with the API it
 * calls, so its client's CPU is taken from dropgate's.
 *
 * Measured (2026-12-01, client CPU only, 64 calls at once against a node:http server in another
 * process, nine rounds alternated): node:http's client with a keep-alive agent 180 µs a call (median;
 * 123-201), this 75 (42-128). fetch was dearer still (WHATWG streams, an `AbortSignal.timeout` and an
 * `AbortSignal.any` per call). The deadline is the PortOne client's CallDeadline: one timer that
 * aborts the call through an EventEmitter, which undici takes as a signal.
 */
import { Pool } from 'undici';
import { CallDeadline } from '@dropgate/portone/deadline';
import { onAbort } from './abort-set.ts';

export interface PostAnswer {
  status: number;
  text: string;
}

/** Pools kept at once; past this many origins the oldest is closed (tests start many servers). */
const MAX_POOLS = 64;
const pools = new Map<string, Pool>();

function poolFor(origin: string): Pool {
  let pool = pools.get(origin);
  if (pool === undefined) {
    if (pools.size >= MAX_POOLS) {
      const [oldest, old] = pools.entries().next().value!;
      pools.delete(oldest);
      void old.close().catch(() => undefined);
    }
    pool = new Pool(origin);
    pools.set(origin, pool);
  }
  return pool;
}

/**
 * POSTs `body` to `url`. Rejects when there is no complete answer: a network error, `signal`
 * aborted, or no whole answer within `timeoutMs` (then with an error named `TimeoutError`, as
 * `AbortSignal.timeout` would).
 */
export async function post(url: string, headers: Record<string, string>, body: string, timeoutMs: number, signal: AbortSignal): Promise<PostAnswer> {
  if (signal.aborted) throw new Error('aborted');
  // An invalid URL or a protocol other than http(s): no answer, like a refused connection.
  const target = new URL(url);
  if (target.protocol !== 'http:' && target.protocol !== 'https:') throw new Error(`cannot POST to a ${target.protocol} URL`);
  const deadline = new CallDeadline(timeoutMs, () => {
    const error = new Error(`no answer within ${timeoutMs} ms`);
    error.name = 'TimeoutError';
    return error;
  });
  // Every call in flight waits on the one signal of the simulator's state.
  const off = onAbort(signal, () => deadline.stop(new Error('aborted')));
  try {
    const res = await poolFor(target.origin).request({
      path: target.pathname + target.search, method: 'POST', headers, body, signal: deadline,
    });
    const text = await res.body.text();
    return { status: res.statusCode, text };
  } catch (error) {
    throw deadline.reason ?? error;
  } finally {
    deadline.clear();
    off();
  }
}
