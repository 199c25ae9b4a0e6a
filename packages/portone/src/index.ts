/**
 * `@dropgate/portone`: the PortOne V1 REST client dropgate's workers use to learn the truth about a
 * payment (`GET /payments/{imp_uid}`) and to refund it (`POST /payments/cancel`).
 */
export { PortOneClient, backoffDelay } from './client.ts';
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
