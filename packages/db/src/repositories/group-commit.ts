/**
 * Group commit: concurrent callers of one database handle share a statement and its commit. The first
 * caller writes at once; callers that arrive while a write is in flight wait for it and then go
 * together, up to `maxBatch` of them, in ONE call of `write`. A lone caller pays no extra latency;
 * under load each commit carries many. Every caller's promise settles only after the statement
 * holding its item has committed (or failed).
 *
 * A batch refused with an error that `splitOn` accepts is retried one item per statement, so one bad
 * item never fails the others and each caller gets its own error. Any other failure (Postgres down, a
 * lost connection) fails the whole batch at once: retrying the items one by one would make each
 * caller wait out the outage again.
 *
 * Items with the same `key` never share a batch: the later one waits for the next batch, so it sees
 * what the earlier one wrote (two rows of one payment in one `insert ... on conflict do update` are
 * refused; two commits of one order in one statement would not see each other).
 *
 * With `lingerMs`, a caller that finds no write in flight waits up to that long for others (or until
 * `maxBatch` of them are waiting) before the write starts, as a Kafka producer's `linger.ms` does.
 * For background work whose callers trickle in (the worker verifying approved payments, each after
 * its own PortOne call): without it nearly every one of them found the writer idle and wrote alone.
 */
export interface GroupCommitOptions<I = never, R = never> {
  maxBatch: number;
  /** Errors after which a batch is retried item by item (default: none). */
  splitOn?: (error: unknown) => boolean;
  /** Items with the same key go in different batches (default: no key). */
  key?: (item: I) => string;
  /**
   * Writes one item of a refused batch (default: `write([item])`). A different write (e.g. one that
   * handles what the batched statement cannot), so a refused batch of one is retried with it too.
   */
  writeAlone?: (item: I) => Promise<R>;
  /** Milliseconds a write waits for company when it would start alone (default 0: at once). */
  lingerMs?: number;
}

/**
 * The linger of writers whose callers are background work that trickles in (a verification after its
 * PortOne call): long enough for a batch to gather at a drop's pace, nothing a buyer waits on.
 */
export const BACKGROUND_LINGER_MS = 2;

/** SQLSTATE class 23 (integrity constraint violation): one item's own fault. */
export function isIntegrityViolation(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.startsWith('23');
}

/** A deadlock or serialization failure (SQLSTATE 40P01, 40001): the batch may go through in smaller pieces. */
export function isConcurrencyFailure(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === '40P01' || code === '40001';
}

interface Pending<I, R> {
  item: I;
  resolve: (result: R) => void;
  reject: (error: unknown) => void;
}

export class GroupCommit<I, R> {
  readonly #write: (items: I[]) => Promise<R[]>;
  readonly #maxBatch: number;
  readonly #splitOn: (error: unknown) => boolean;
  readonly #key: ((item: I) => string) | undefined;
  readonly #writeAlone: ((item: I) => Promise<R>) | undefined;
  readonly #lingerMs: number;
  #queue: Pending<I, R>[] = [];
  #writing = false;
  #lingering: NodeJS.Timeout | undefined;
  /** Statements written and items in them, for tests and metrics. */
  readonly stats = { statements: 0, items: 0, largestBatch: 0, splitBatches: 0 };

  /** `write` commits its items in one statement and answers one result per item, in order. */
  constructor(write: (items: I[]) => Promise<R[]>, opts: GroupCommitOptions<I, R>) {
    this.#write = write;
    this.#maxBatch = opts.maxBatch;
    this.#splitOn = opts.splitOn ?? (() => false);
    this.#key = opts.key;
    this.#writeAlone = opts.writeAlone;
    this.#lingerMs = opts.lingerMs ?? 0;
  }

  /** Items waiting for the write in flight to finish (they go in the next batch). */
  get waiting(): number {
    return this.#queue.length;
  }

  /** Resolves with the item's result once its statement has committed. */
  submit(item: I): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.#queue.push({ item, resolve, reject });
      if (this.#writing) return;
      if (this.#lingerMs <= 0 || this.#queue.length >= this.#maxBatch) {
        void this.#drain();
      } else {
        this.#lingering ??= setTimeout(() => void this.#drain(), this.#lingerMs);
      }
    });
  }

  async #drain(): Promise<void> {
    clearTimeout(this.#lingering);
    this.#lingering = undefined;
    this.#writing = true;
    try {
      while (this.#queue.length > 0) {
        const batch = this.#take();
        try {
          const results = await this.#run(batch.map((p) => p.item));
          batch.forEach((p, i) => p.resolve(results[i]!));
        } catch (error) {
          if ((batch.length === 1 && !this.#writeAlone) || !this.#splitOn(error)) {
            for (const p of batch) p.reject(error);
            continue;
          }
          this.stats.splitBatches++;
          for (const p of batch) {
            try {
              p.resolve(this.#writeAlone ? await this.#writeAlone(p.item) : (await this.#run([p.item]))[0]!);
            } catch (own) {
              p.reject(own);
            }
          }
        }
      }
    } finally {
      this.#writing = false;
    }
  }

  /** The next batch: up to `maxBatch` items in arrival order, no two with the same key. */
  #take(): Pending<I, R>[] {
    const key = this.#key;
    if (!key) return this.#queue.splice(0, this.#maxBatch);
    const batch: Pending<I, R>[] = [];
    const rest: Pending<I, R>[] = [];
    const keys = new Set<string>();
    for (const p of this.#queue) {
      const k = key(p.item);
      if (batch.length >= this.#maxBatch || keys.has(k)) rest.push(p);
      else {
        keys.add(k);
        batch.push(p);
      }
    }
    this.#queue = rest;
    return batch;
  }

  async #run(items: I[]): Promise<R[]> {
    const results = await this.#write(items);
    this.stats.statements++;
    this.stats.items += items.length;
    this.stats.largestBatch = Math.max(this.stats.largestBatch, items.length);
    return results;
  }
}

/** One group-commit writer per database handle and kind, made on first use. */
export function perHandle<H extends object, W>(make: (handle: H) => W): (handle: H) => W {
  const writers = new WeakMap<H, W>();
  return (handle) => {
    let writer = writers.get(handle);
    if (writer === undefined) {
      writer = make(handle);
      writers.set(handle, writer);
    }
    return writer;
  };
}
