/**
 * A short per-process cache of the storefront's reads (an event's availability, its seat pages). At a
 * drop every buyer refused a seat looks at the map again: about half of the API's requests in a
 * 100,000-buyer rehearsal, each a Redis read and a serialized page. Reads of the same page within
 * READ_CACHE_MS share one: the first reads Redis and serializes, the others (those waiting on it
 * included) get its body. What a buyer sees is at most READ_CACHE_MS old, as from any page that is
 * not reloaded; a confirm and an order always decide on Redis itself.
 *
 * A failed read is never kept (the next one tries again). A request that says `Cache-Control:
 * no-cache` (or `no-store`, `max-age=0`) reads afresh, and what it read serves the others; at most
 * FRESH_READS_PER_SECOND of those a second per page, beyond which it is answered as a plain read (at
 * most READ_CACHE_MS old), so a client sending no-cache in a loop cannot turn every request into a read. What is kept is bounded
 * by count and by bytes (the oldest go first), and bodies past the TTL are dropped as new ones come,
 * so the pages a caller asks for (each cursor and limit its own) cannot grow it: a seat page of 1,000
 * is about 90 KB, and a thousand of them had kept 131 MB.
 */

/** Bodies kept at most (a seat page of 100 is about 8 KB). */
export const MAX_ENTRIES = 1_000;
/** Bytes of bodies kept at most (UTF-16 code units, as JavaScript counts a string). */
export const MAX_BYTES = 16 * 1024 * 1024;
/** Fresh reads (no-cache) of one page a second, at most; beyond, the newest body read is answered. */
export const FRESH_READS_PER_SECOND = 20;

interface Entry {
  /** When the read started (ms, performance.now()). */
  at: number;
  body: Promise<string>;
  /** The body's length once read (0 while in flight). */
  size: number;
  /** Fresh reads of this page in the second starting at `freshSince`. */
  fresh: number;
  freshSince: number;
}

export class ReadCache {
  readonly #ttlMs: number;
  readonly #entries = new Map<string, Entry>();
  readonly #now: () => number;
  #bytes = 0;

  constructor(ttlMs: number, now: () => number = () => performance.now()) {
    this.#ttlMs = ttlMs;
    this.#now = now;
  }

  /** Entries kept now (tests). */
  get size(): number {
    return this.#entries.size;
  }

  /** Bytes of the bodies kept now (tests). */
  get bytes(): number {
    return this.#bytes;
  }

  /**
   * The body for `key`: a kept one younger than the TTL (or one being read), else `read()`'s, kept
   * for the others. `fresh`: read afresh whatever is kept, within FRESH_READS_PER_SECOND for the key
   * (beyond, as a plain read).
   */
  get(key: string, read: () => Promise<string>, fresh = false): Promise<string> {
    if (this.#ttlMs === 0) return read();
    const now = this.#now();
    const kept = this.#entries.get(key);
    if (kept && !fresh && now - kept.at < this.#ttlMs) return kept.body;
    // Fresh reads are counted per page over a second, across the reads that replace one another.
    let freshSince = now;
    let freshCount = 0;
    if (kept && now - kept.freshSince < 1_000) {
      freshSince = kept.freshSince;
      freshCount = kept.fresh;
    }
    if (fresh && freshCount >= FRESH_READS_PER_SECOND) {
      // Past the page's fresh reads: answered as a plain read, from a body younger than the TTL.
      if (kept && now - kept.at < this.#ttlMs) return kept.body;
    } else if (fresh) {
      freshCount++;
    }
    if (kept) this.#drop(key, kept);
    this.#dropExpired(now);
    const body = read();
    const entry: Entry = { at: now, body, size: 0, fresh: freshCount, freshSince };
    this.#entries.set(key, entry);
    if (this.#entries.size > MAX_ENTRIES) this.#dropOldest();
    body.then((text) => {
      // Counted once read, if still kept (a newer read may have replaced it meanwhile).
      if (this.#entries.get(key) !== entry) return;
      entry.size = text.length;
      this.#bytes += entry.size;
      while (this.#bytes > MAX_BYTES && this.#entries.size > 0) this.#dropOldest();
    }, () => {
      // A failed read is not kept; a later read that replaced this entry stays.
      if (this.#entries.get(key) === entry) this.#drop(key, entry);
    });
    return body;
  }

  #drop(key: string, entry: Entry): void {
    this.#entries.delete(key);
    this.#bytes -= entry.size;
  }

  #dropOldest(): void {
    const [key, entry] = this.#entries.entries().next().value!;
    this.#drop(key, entry);
  }

  /** Entries are kept in the order their reads started: drops those past the TTL from the front. */
  #dropExpired(now: number): void {
    for (const [key, entry] of this.#entries) {
      if (now - entry.at < this.#ttlMs) return;
      this.#drop(key, entry);
    }
  }
}

/** Whether a request's Cache-Control asks for a fresh read. */
export function wantsFresh(cacheControl: string | string[] | undefined): boolean {
  if (cacheControl === undefined) return false;
  const value = (Array.isArray(cacheControl) ? cacheControl.join(',') : cacheControl).toLowerCase();
  return /(^|[\s,])(no-cache|no-store|max-age\s*=\s*0)(?=$|[\s,;])/.test(value);
}
