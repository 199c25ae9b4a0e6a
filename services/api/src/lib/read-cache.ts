/**
 * A short per-process cache of the storefront's reads (an event's availability, its seat pages). At a
 * drop every buyer refused a seat looks at the map again: about half of the API's requests in a
 * 100,000-buyer rehearsal, each a Redis read and a serialized page. Reads of the same page within
 * READ_CACHE_MS share one: the first reads Redis and serializes, the others (those waiting on it
 * included) get its body. What a buyer sees is at most READ_CACHE_MS old, as from any page that is
 * not reloaded; a confirm and an order always decide on Redis itself.
 *
 * A failed read is never kept (the next one tries again). A request that says `Cache-Control:
 * no-cache` (or `no-store`, `max-age=0`) reads afresh, and what it read serves the others. At most
 * MAX_ENTRIES bodies are kept (the oldest go first), so cursors a caller makes up cannot grow it.
 */

/** Bodies kept at most (a seat page of 100 is about 8 KB). */
export const MAX_ENTRIES = 1_000;

interface Entry {
  /** When the read started (ms, performance.now()). */
  at: number;
  body: Promise<string>;
}

export class ReadCache {
  readonly #ttlMs: number;
  readonly #entries = new Map<string, Entry>();
  readonly #now: () => number;

  constructor(ttlMs: number, now: () => number = () => performance.now()) {
    this.#ttlMs = ttlMs;
    this.#now = now;
  }

  /** Entries kept now (tests). */
  get size(): number {
    return this.#entries.size;
  }

  /**
   * The body for `key`: a kept one younger than the TTL (or one being read), else `read()`'s, kept
   * for the others. `fresh`: read afresh whatever is kept.
   */
  get(key: string, read: () => Promise<string>, fresh = false): Promise<string> {
    if (this.#ttlMs === 0) return read();
    const now = this.#now();
    const kept = this.#entries.get(key);
    if (kept && !fresh && now - kept.at < this.#ttlMs) return kept.body;
    if (kept) this.#entries.delete(key);
    const body = read();
    const entry: Entry = { at: now, body };
    this.#entries.set(key, entry);
    if (this.#entries.size > MAX_ENTRIES) this.#entries.delete(this.#entries.keys().next().value!);
    // A failed read is not kept; a later read that replaced this entry stays.
    body.catch(() => {
      if (this.#entries.get(key) === entry) this.#entries.delete(key);
    });
    return body;
  }
}

/** Whether a request's Cache-Control asks for a fresh read. */
export function wantsFresh(cacheControl: string | string[] | undefined): boolean {
  if (cacheControl === undefined) return false;
  const value = (Array.isArray(cacheControl) ? cacheControl.join(',') : cacheControl).toLowerCase();
  return /(^|[\s,])(no-cache|no-store|max-age\s*=\s*0)(?=$|[\s,;])/.test(value);
}
