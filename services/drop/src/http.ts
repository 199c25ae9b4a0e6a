/**
 * The buyers' HTTP client: node:http on keep-alive connections. A drop sends tens of thousands of
 * small JSON requests a second from one process; fetch (undici behind WHATWG streams, an
 * AbortSignal and its timer per request) spent several times the CPU of the request itself, CPU
 * the API and the simulator on the same machine then do not get.
 */
import { Agent, request } from 'node:http';

/** Connections are kept and reused; as many as there are requests in flight. */
const agent = new Agent({ keepAlive: true, keepAliveMsecs: 10_000, scheduling: 'lifo' });

export interface JsonAnswer {
  status: number;
  /** The body parsed as JSON; null when empty or not JSON. */
  body: Record<string, unknown> | null;
}

/**
 * Sends `body` (JSON) with `method` to `url` and reads the answer. Rejects on a network error, or
 * when the server goes quiet for `timeoutMs`.
 */
export function jsonRequest(method: 'GET' | 'POST', url: string, body?: unknown, headers: Record<string, string> = {}, timeoutMs = 60_000): Promise<JsonAnswer> {
  const payload = body === undefined ? null : Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = request(url, {
      method,
      agent,
      headers: payload === null ? headers : { ...headers, 'content-type': 'application/json', 'content-length': String(payload.length) },
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', reject);
      res.on('end', () => {
        const text = chunks.length === 1 ? chunks[0]!.toString() : Buffer.concat(chunks).toString();
        let parsed: Record<string, unknown> | null;
        try {
          parsed = text ? (JSON.parse(text) as Record<string, unknown>) : null;
        } catch {
          parsed = null;
        }
        resolve({ status: res.statusCode ?? 0, body: parsed });
      });
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer from ${method} ${url} within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(payload ?? undefined);
  });
}
