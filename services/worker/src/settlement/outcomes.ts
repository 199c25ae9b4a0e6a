/** What a settlement step did: the result a job completes with (logged, and asserted by tests). */
export type SettleOutcome =
  | 'ticketed' | 'ticketed-late' | 'already-paid' | 'already-refunded'
  | 'refunded-duplicate' | 'refunded-closed' | 'refunded-amount' | 'refunded-seats-gone' | 'refunded-buyer-limit' | 'refunded-oversell'
  | 'voided' | 'released' | 'payment-dropped' | 'nothing-held' | 'waiting';

export type ExpiryOutcome =
  | `paid:${SettleOutcome}` | 'expired' | 'ended' | 'superseded' | 'not-due' | 'order-missing' | `not-released-${string}`;

export type VerifyOutcome = 'verified' | `settled:${SettleOutcome}` | 'unverified-released' | 'unverified-dropped' | 'order-missing';

export type PaymentJobOutcome =
  | SettleOutcome | VerifyOutcome | 'checked' | 'no-payment' | 'watching' | 'still-unpaid' | 'still-failed' | 'not-ours' | 'unknown-payment'
  | `ended-${string}`;
