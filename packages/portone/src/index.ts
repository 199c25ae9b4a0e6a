/**
 * `@dropgate/portone`: dropgate's PortOne clients. The V1 REST client (`GET /payments/{imp_uid}`,
 * `POST /payments/cancel`), the V2 REST client (through `@portone/server-sdk`), the V2 signature check,
 * and the gateway that lets settlement speak to either API through one face.
 */
export { PortOneClient, PAYMENTS_PER_LOOKUP, backoffDelay } from './client.ts';
export { CallDeadline } from './deadline.ts';
export { PortOneV2Client, parseV2Payment } from './v2.ts';
export type { PortOneV2Payment, PortOneV2Status, PortOneV2ClientOptions, ConfirmResult, ConfirmRefusal } from './v2.ts';
export { PaymentGateway, v2PaymentKey, apiOfPaymentKey, fromV2Payment, firstListPage } from './gateway.ts';
export type { PortOneApi } from './gateway.ts';
export { verifyWebhook } from './webhook.ts';
export type { WebhookVerification, WebhookHeaders } from './webhook.ts';
export {
  PortOneError,
  PortOneApiError,
  PortOneUnavailableError,
  PortOneAuthError,
  PortOneProtocolError,
} from './errors.ts';
export type { PortOneEndpoint, UnavailableReason } from './errors.ts';
export type {
  PortOneClientOptions,
  PortOnePayment,
  PortOnePaymentStatus,
  PortOneRequestResult,
  CancelPaymentRequest,
} from './types.ts';
