/**
 * The confirm decision vocabulary: codes PortOne's confirm call gets back, and the short Korean reason
 * PortOne shows the buyer (it becomes the payment's `fail_reason`).
 */
export const RefusalCodes = [
  'SOLD_OUT',
  'AMOUNT_MISMATCH',
  'ORDER_NOT_FOUND',
  'SALE_NOT_OPEN',
  'SALE_CLOSED',
  'BUYER_LIMIT',
  'ALREADY_PAID',
  'NOT_READY',
  'OVERLOADED',
  'DEADLINE',
  'TOO_MANY_ATTEMPTS',
  'ORDER_CLOSED',
  'PAYMENT_UNCHECKED',
  'FORBIDDEN',
  'BAD_REQUEST',
] as const;
export type RefusalCode = (typeof RefusalCodes)[number];
/** `APPROVED` or a refusal code: the label confirm metrics use. */
export type ConfirmOutcome = 'APPROVED' | RefusalCode;

/** Buyer-facing reasons. Short, polite, Korean: PortOne shows them in the payment window. */
export const REFUSAL_REASONS: Readonly<Record<RefusalCode, string>> = Object.freeze({
  SOLD_OUT: '선택하신 좌석이 이미 판매되었습니다',
  AMOUNT_MISMATCH: '결제 금액이 주문 금액과 다릅니다',
  ORDER_NOT_FOUND: '주문 정보를 찾을 수 없습니다',
  SALE_NOT_OPEN: '아직 판매가 시작되지 않았습니다',
  SALE_CLOSED: '판매가 종료되었습니다',
  BUYER_LIMIT: '1인당 구매 가능 수량을 초과했습니다',
  ALREADY_PAID: '이미 결제가 완료된 주문입니다',
  NOT_READY: '일시적으로 결제를 진행할 수 없습니다. 잠시 후 다시 시도해 주세요',
  OVERLOADED: '접속자가 많아 결제를 진행할 수 없습니다. 잠시 후 다시 시도해 주세요',
  DEADLINE: '응답 시간이 초과되어 결제를 중단했습니다. 다시 시도해 주세요',
  TOO_MANY_ATTEMPTS: '결제 시도 횟수를 초과했습니다. 새 주문으로 다시 시도해 주세요',
  ORDER_CLOSED: '이미 종료된 주문입니다. 새 주문으로 다시 시도해 주세요',
  PAYMENT_UNCHECKED: '이전 결제를 확인하고 있습니다. 잠시 후 다시 시도해 주세요',
  FORBIDDEN: '허용되지 않은 결제 요청입니다',
  BAD_REQUEST: '잘못된 결제 요청입니다',
});


/** Refusals that are the state of the order, remembered per imp_uid so a repeat gets the same answer. */
export const FINAL_REFUSALS: ReadonlySet<RefusalCode> = new Set([
  'SOLD_OUT', 'AMOUNT_MISMATCH', 'ORDER_NOT_FOUND', 'SALE_NOT_OPEN', 'SALE_CLOSED', 'BUYER_LIMIT', 'ALREADY_PAID', 'DEADLINE', 'ORDER_CLOSED',
]);
