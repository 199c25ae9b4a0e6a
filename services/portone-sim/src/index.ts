/**
 * `@dropgate/portone-sim`: a PortOne V1 and V2 stand-in. It serves PortOne's REST APIs and plays the buyer
 * and the PG (confirm call, outcome, webhooks), with faults to inject. Run it with `npm run sim`, or
 * start one per test file with {@link startSimulator}.
 */
import type { AddressInfo } from 'node:net';
import { buildApp } from './app.ts';
import { SimulatorEngine, type RestCall, type SetPaymentStatusOptions, type V2PaymentWindowResult } from './engine.ts';
import type { V2PaymentWindowRequest } from './v2.ts';
import type {
  Faults,
  Ledger,
  LedgerFilter,
  PaymentWindowRequest,
  PaymentWindowResult,
  SimPayment,
  SimPaymentStatus,
  SimulatorOptions,
} from './types.ts';

export { SimError } from './errors.ts';
export type { SimErrorCode } from './errors.ts';
export type { RestCall, SetPaymentStatusOptions, V2PaymentWindowResult } from './engine.ts';
export type { V2PaymentWindowRequest, V2WebhookVersion } from './v2.ts';
export { signedHeaders, newWebhookSecret } from './v2.ts';
export { readSimConfig, SimConfigError } from './config.ts';
export type { SimConfig } from './config.ts';
export type {
  CancelLedgerEntry,
  ConfirmExchange,
  ConfirmLedgerEntry,
  Faults,
  Ledger,
  LedgerFilter,
  PaymentOutcome,
  PaymentWindowRequest,
  PaymentWindowResult,
  SimCancelHistoryEntry,
  SimPayment,
  SimPaymentStatus,
  SimLogLevel,
  SimulatorOptions,
  WebhookLedgerEntry,
} from './types.ts';

/** A running simulator. Methods mirror the `/sim/*` HTTP routes. */
export interface Simulator {
  /** Base URL, e.g. `http://127.0.0.1:41234`: PortOne REST at its root, controls under `/sim`. */
  readonly url: string;
  /** Stops pending webhooks and timers, then the HTTP server. */
  close(): Promise<void>;
  /** A snapshot of what happened, optionally for one imp_uid and/or merchant_uid. */
  ledger(filter?: LedgerFilter): Ledger;
  /** Replaces the global faults (throws SimError INVALID_REQUEST on an unknown or invalid one). */
  setFaults(faults: Faults): void;
  /** The global faults. */
  getFaults(): Faults;
  /**
   * Calls `listener` (in this process) with each PortOne REST request before it is answered; the answer
   * waits for what it returns. null stops.
   */
  onRestCall(listener: ((call: RestCall) => void | Promise<void>) | null): void;
  /** Forgets payments, tokens, prepared amounts, the ledger and faults; stops pending work. */
  reset(): void;
  /** Opens a payment window, like `POST /sim/v1/payments`. */
  pay(req: PaymentWindowRequest): Promise<PaymentWindowResult>;
  /** Opens a V2 payment window (confirm-webhook or manual mode), like `POST /sim/v2/payments`. */
  payV2(req: V2PaymentWindowRequest): Promise<V2PaymentWindowResult>;
  /** The V2 Standard Webhooks secret its confirm calls and webhooks are signed with (`whsec_...`). */
  readonly webhookSecret: string;
  /** The V2 store it plays. */
  readonly storeId: string;
  /** The payment as PortOne knows it, or null. */
  getPayment(impUid: string): SimPayment | null;
  /** Changes a payment's status behind the merchant's back (a PG that reports failed, later paid). */
  setPaymentStatus(impUid: string, status: SimPaymentStatus, opts?: SetPaymentStatusOptions): SimPayment;
  /** A PortOne-side cancel (console, PG): refunds `amount` (default all) and sends a `cancelled` webhook. */
  cancelPayment(impUid: string, opts?: { amount?: number; reason?: string }): SimPayment;
  /**
   * Sends a webhook again, claiming `status` (default: the real one), with `bodyOverride` merged over
   * the body. Resolves after the first attempt.
   */
  sendWebhook(impUid: string, status?: SimPaymentStatus, bodyOverride?: Record<string, unknown>): Promise<void>;
  /**
   * Resolves when no webhook, retry or delayed outcome is pending. A webhook held back by
   * `webhook_reorder` waits for the next one and is not counted until released.
   */
  settled(): Promise<void>;
  /**
   * How many pieces of background work (webhooks and their retries, a payment the PG turns paid later,
   * webhooks held back for reordering) are not done yet for merchant_uids starting with
   * `merchantUidPrefix` (e.g. `<event id>.`); every one when omitted. 0 means nothing more will come
   * for them unless someone asks.
   */
  pending(merchantUidPrefix?: string): number;
}

/** Starts a simulator on `host:port` (default 127.0.0.1, a random port). */
export async function startSimulator(opts: SimulatorOptions = {}): Promise<Simulator> {
  const engine = new SimulatorEngine(opts);
  const app = await buildApp(engine, { logLevel: opts.logLevel ?? (opts.logger === true ? 'info' : 'silent') });
  const host = opts.host ?? '127.0.0.1';
  await app.listen({ port: opts.port ?? 0, host });
  const { port } = app.server.address() as AddressInfo;
  // A wildcard listen address is not something a client can connect to; loopback is.
  const reachable = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host;
  const url = `http://${reachable.includes(':') ? `[${reachable}]` : reachable}:${port}`;
  let closing: Promise<void> | null = null;

  return {
    url,
    close() {
      closing ??= (async () => {
        engine.close();
        await app.close();
      })();
      return closing;
    },
    ledger: (filter) => engine.ledger(filter),
    setFaults: (faults) => {
      engine.setFaults(faults);
    },
    getFaults: () => engine.faults,
    onRestCall: (listener) => {
      engine.restListener = listener;
    },
    reset: () => engine.reset(),
    pay: (req) => engine.pay(req),
    payV2: (req) => engine.payV2(req),
    webhookSecret: engine.webhookSecret,
    storeId: engine.storeId,
    getPayment: (impUid) => engine.getPayment(impUid),
    setPaymentStatus: (impUid, status, statusOpts) => engine.setPaymentStatus(impUid, status, statusOpts),
    cancelPayment: (impUid, cancelOpts) => engine.cancelFromConsole(impUid, cancelOpts),
    sendWebhook: (impUid, status, bodyOverride) => engine.sendWebhook(impUid, status, bodyOverride),
    settled: () => engine.settled(),
    pending: (prefix) => engine.pending(prefix ?? ''),
  };
}
