/**
 * PortOne's messages, in Korean as PortOne sends them. Merchants show some of them to buyers (the
 * confirm fail_reason) and log others, so tests should see the real wording, not placeholders.
 */
export const MESSAGES = {
  paymentNotFound: '존재하지 않는 결제정보입니다.',
  unauthorized: '인증 토큰이 없거나 만료되었습니다.',
  badCredentials: 'imp_key, imp_secret 인증정보가 올바르지 않습니다.',
  unavailable: '일시적으로 서비스를 이용할 수 없습니다. 잠시 후 다시 시도해주세요.',
  badRequest: '요청 형식이 올바르지 않습니다.',
  routeNotFound: '요청하신 API를 찾을 수 없습니다.',
  internal: '서버 내부 오류가 발생했습니다.',
  cancelTargetNotFound: '취소할 결제건이 존재하지 않습니다.',
  cancelUidMismatch: 'imp_uid와 merchant_uid가 같은 결제건을 가리키지 않습니다.',
  alreadyCancelled: '이미 전액취소된 주문입니다.',
  notPaid: '결제완료 상태가 아닌 결제건은 취소할 수 없습니다.',
  cancelAmountInvalid: '취소요청금액(amount)은 양의 정수여야 합니다.',
  checksumMismatch: (checksum: number, balance: number): string =>
    `요청하신 checksum(${checksum}원)이 취소가능잔액(${balance}원)과 일치하지 않습니다.`,
  cancelAmountExceeds: (amount: number, balance: number): string =>
    `취소요청금액(${amount}원)이 취소가능잔액(${balance}원)을 초과합니다.`,
  prepareInvalid: 'merchant_uid와 amount(양의 정수)가 필요합니다.',
  prepareExists: '이미 사전등록된 merchant_uid입니다.',
  prepareNotFound: '사전등록된 결제정보가 존재하지 않습니다.',
  prepareMismatch: (prepared: number, amount: number): string =>
    `사전등록된 결제금액(${prepared}원)과 결제요청금액(${amount}원)이 일치하지 않습니다.`,
  /** fail_reason of a payment the merchant's confirm endpoint stopped (or did not answer in time). */
  confirmStopped: (reason: string | null): string =>
    `고객사 요청에 의해 결제를 중단합니다. (상세사유 : ${reason ?? '알 수 없음'})`,
  pgDeclined: '[카드사 승인거절] 한도초과 또는 잔액부족',
  consoleCancelReason: '관리자 콘솔 취소',
} as const;
