/**
 * The buyers' HTTP client: undici's request() on keep-alive connections. A drop sends tens of
 * thousands of small JSON requests a second from one process; fetch (undici behind WHATWG streams,
 * an AbortSignal and its timer per request) spent several times the CPU of the request itself, CPU
 * the API and the simulator on the same machine then do not get. Measured in one process against a
 * plain node:http server (client and server): node:http's client 141-202 µs a request, request()
 * 114-195 µs.
 */
import { errors, request } from 'undici';

export interface JsonAnswer {
  status: number;
  /** The body parsed as JSON; null when empty or not JSON. */
  body: Record<string, unknown> | null;
}

/**
 * Sends `body` (JSON) with `method` to `url` and reads the answer. Rejects on a network error, or
 * when the server goes quiet for `timeoutMs`.
 */
export async function jsonRequest(method: 'GET' | 'POST', url: string, body?: unknown, headers: Record<string, string> = {}, timeoutMs = 60_000): Promise<JsonAnswer> {
  try {
    const res = await request(url, {
      method,
      headers: body === undefined ? headers : { ...headers, 'content-type': 'application/json' },
      body: body === undefined ? null : JSON.stringify(body),
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
    });
    const text = await res.body.text();
    let parsed: Record<string, unknown> | null;
    try {
      parsed = text ? (JSON.parse(text) as Record<string, unknown>) : null;
    } catch {
      parsed = null;
    }
    return { status: res.statusCode, body: parsed };
  } catch (error) {
    if (error instanceof errors.HeadersTimeoutError || error instanceof errors.BodyTimeoutError) {
      throw new Error(`no answer from ${method} ${url} within ${timeoutMs} ms`, { cause: error });
    }
    throw error;
  }
}
