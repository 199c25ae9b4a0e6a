/**
 * The simulator's in-memory state. A `/sim/reset` replaces the whole `SimState` instead of clearing
 * it field by field: work still in flight (a confirm call, a webhook retry) keeps a reference to the
 * old state, is aborted through its signal, and can no longer touch the new one.
 */
import { pauseUnless } from './abort-set.ts';
import type { V2Attempt } from './v2.ts';
import type {
  CancelLedgerEntry,
  ConfirmLedgerEntry,
  Faults,
  SimPayment,
  WebhookLedgerEntry,
} from './types.ts';

/** A payment and what the simulator needs to keep sending its webhooks. */
export interface PaymentRecord {
  payment: SimPayment;
  noticeUrl: string | undefined;
  /** The faults given with the payment window request; they override global ones for its webhooks. */
  faults: Faults;
  /** A V2 attempt (its webhooks are signed V2 ones); undefined for a V1 payment. */
  v2?: V2Attempt;
}

/** A webhook ready to be sent. */
export interface WebhookJob {
  impUid: string;
  merchantUid: string;
  noticeUrl: string;
  status: string;
  body: Record<string, unknown>;
  faults: Faults;
  /** V2: Standard Webhooks headers for the serialized body (one webhook-id for every attempt and copy). */
  sign?: (body: string) => Record<string, string>;
}

/** A webhook held back by `webhook_reorder`. */
export interface HeldWebhook {
  job: WebhookJob;
  timer: NodeJS.Timeout;
}

/** Everything a reset throws away. */
export class SimState {
  readonly payments = new Map<string, PaymentRecord>();
  /** Payments of each merchant_uid, oldest first (the last one is what `/payments/find` returns). */
  readonly byMerchantUid = new Map<string, PaymentRecord[]>();
  /**
   * Every payment that was ever paid, by the time it was paid (oldest first): the listings of paid
   * payments (V1 `GET /payments/status/paid`, V2 `GET /payments`) read a window of it rather than
   * every payment, so a ledger sweep during a 100,000-buyer drop costs the simulator little.
   */
  readonly paidOrder: PaymentRecord[] = [];
  /** Amounts registered with `POST /payments/prepare`. */
  readonly prepared = new Map<string, number>();
  /** Access token -> expiry (epoch ms). */
  readonly tokens = new Map<string, number>();
  readonly confirms: ConfirmLedgerEntry[] = [];
  readonly webhooks: WebhookLedgerEntry[] = [];
  readonly cancels: CancelLedgerEntry[] = [];
  /** Webhooks held back by `webhook_reorder`, by imp_uid. */
  readonly held = new Map<string, HeldWebhook>();
  readonly #abort = new AbortController();
  /** Background work, with the merchant_uid it is for (null: not tied to one order). */
  readonly #tasks = new Map<Promise<void>, string | null>();

  /** Aborted when this state is reset or the simulator closes. */
  get signal(): AbortSignal {
    return this.#abort.signal;
  }

  get disposed(): boolean {
    return this.#abort.signal.aborted;
  }

  /**
   * Keeps track of background work so `settled()` can wait for it, and `pending()` tell whose it is.
   * The task must not reject.
   */
  track(task: Promise<void>, merchantUid: string | null = null): void {
    this.#tasks.set(task, merchantUid);
    void task.finally(() => this.#tasks.delete(task));
  }

  /** Resolves once no tracked background work is left (work may spawn more work: loop). */
  async settled(): Promise<void> {
    while (this.#tasks.size > 0) await Promise.all(this.#tasks.keys());
  }

  /**
   * Background work not done yet (webhooks and their retries, delayed outcomes, webhooks held back for
   * reordering) for merchant_uids starting with `prefix`; every piece of work when it is empty.
   */
  pending(prefix = ''): number {
    let n = 0;
    for (const muid of this.#tasks.values()) if (prefix === '' || (muid !== null && muid.startsWith(prefix))) n++;
    for (const held of this.held.values()) if (held.job.merchantUid.startsWith(prefix)) n++;
    return n;
  }

  /** Waits `ms`; resolves false instead of waiting on when this state is disposed. */
  async pause(ms: number): Promise<boolean> {
    if (this.disposed) return false;
    if (ms <= 0) return true;
    return pauseUnless(this.#abort.signal, ms);
  }

  /** Stops every timer and outbound request of this state. */
  dispose(): void {
    this.#abort.abort();
    for (const held of this.held.values()) clearTimeout(held.timer);
    this.held.clear();
  }
}
