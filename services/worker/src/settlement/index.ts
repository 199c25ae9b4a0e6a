/**
 * Settlement: how PortOne's truth about a payment (from its REST API, never from a webhook or confirm
 * body) ends an order's hold, along the order state machine of @dropgate/domain:
 * verify (a new payment on a hold), paid (tickets or refund), release (failed, cancelled), expiry
 * (ask, then release), watch (late payments), refund (money that cannot be kept), under one lock per
 * order.
 */
export { withOrderLock } from './lock.ts';
export { fetchPaymentShared, lookupFailure, recordPayment, keptAmount } from './payment.ts';
export { applyPaymentLocked } from './apply.ts';
export { endDisplacedHold, endLostHold, expireHold } from './expiry.ts';
export { checkUnchecked, verifyPayment } from './verify.ts';
export { recheckUnknownPayment, watchPayment, WATCH_CHECKS } from './watch.ts';
export { refund, type RefundReason } from './refund.ts';
export type * from './outcomes.ts';
