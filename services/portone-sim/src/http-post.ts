/**
 * The simulator's outbound POST (confirm calls and webhooks): node:http(s) on keep-alive connections,
 * with one deadline for the whole exchange (headers and body) and the state's abort signal. A drop
 * sends one confirm call per payment window; fetch (undici behind WHATWG streams, plus an
 * `AbortSignal.timeout` and an `AbortSignal.any` per call) cost the simulator more CPU than the
 * calls themselves, taken from the API it shares the machine with.
 */
import { setMaxListeners } from 'node:events';
import { Agent as HttpAgent, request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';

const httpAgent = new HttpAgent({ keepAlive: true });
const httpsAgent = new HttpsAgent({ keepAlive: true });

export interface PostAnswer {
  status: number;
  text: string;
}

/**
 * POSTs `body` to `url`. Rejects when there is no complete answer: a network error, `signal`
 * aborted, or no whole answer within `timeoutMs` (then with an error named `TimeoutError`, as
 * `AbortSignal.timeout` would).
 */
export function post(url: string, headers: Record<string, string>, body: string, timeoutMs: number, signal: AbortSignal): Promise<PostAnswer> {
  return new Promise<PostAnswer>((resolve, reject) => {
    if (signal.aborted) {
      reject(new Error('aborted'));
      return;
    }
    let req: ClientRequest | null = null;
    let done = false;
    const onAbort = () => fail(new Error('aborted'));
    const timer = setTimeout(() => {
      const error = new Error(`no answer within ${timeoutMs} ms`);
      error.name = 'TimeoutError';
      fail(error);
    }, timeoutMs);
    function settle(): boolean {
      if (done) return false;
      done = true;
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      return true;
    }
    function fail(error: Error): void {
      if (!settle()) return;
      req?.destroy();
      reject(error);
    }
    // Every call in flight listens on the one signal of the simulator's state.
    setMaxListeners(0, signal);
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      const target = new URL(url);
      const https = target.protocol === 'https:';
      const payload = Buffer.from(body);
      req = (https ? httpsRequest : httpRequest)(target, {
        method: 'POST',
        agent: https ? httpsAgent : httpAgent,
        headers: { ...headers, 'content-length': String(payload.length) },
      }, (res: IncomingMessage) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          if (settle()) resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString() });
        });
        res.on('error', fail);
        res.on('close', () => {
          if (!res.complete) fail(new Error('the answer was cut off'));
        });
      });
      req.on('error', fail);
      req.end(payload);
    } catch (error) {
      // An invalid URL or a protocol other than http(s): no answer, like a refused connection.
      fail(error as Error);
    }
  });
}
