/** Request and response schemas (TypeBox): validation on the way in, fast serialisation on the way out. */
import Type from 'typebox';
import { BUYER_TOKEN_MAX_LENGTH, EVENT_ID_PATTERN, MERCHANT_UID_PATTERN, RESOURCE_ID_PATTERN, PAYMENT_AMOUNT_MAX, WAITLIST_ENTRY_MAX_PLACES } from '@dropgate/domain';

/**
 * Control characters: C0 (NUL to U+001F), DEL and C1. None belongs in a name, label or id, and
 * Postgres cannot store NUL in text at all, so every free-text string a caller sends is refused (400)
 * when it holds one, before anything is stored.
 */
const CONTROL_CHARS = '\\u0000-\\u001f\\u007f-\\u009f';
/** Any text without control characters. */
export const NO_CONTROL_CHARS_PATTERN = `^[^${CONTROL_CHARS}]*$`;
/** One word: no commas (order lines are stored comma-separated), whitespace or control characters. */
export const LABEL_PATTERN = `^[^,\\s${CONTROL_CHARS}]+$`;
/**
 * The statuses a PortOne V1 webhook carries (portone.md section 2). Anything else is refused 400: PortOne
 * sends no other, and retries only on network errors and 5xx, so a refusal costs a real notification
 * nothing, while an open set let a caller start a PortOne lookup per made-up status.
 */
export const V1_WEBHOOK_STATUS_PATTERN = '^(ready|paid|failed|cancelled)$';
/** What a caller is told when a string breaks one of the patterns above (validation messages). */
export const PATTERN_MESSAGES: Readonly<Record<string, string>> = {
  [NO_CONTROL_CHARS_PATTERN]: 'must not contain control characters (such as NUL, tab or line feed)',
  [LABEL_PATTERN]: 'must be one word without commas, whitespace or control characters (such as NUL)',
  [V1_WEBHOOK_STATUS_PATTERN]: 'must be a status PortOne V1 sends: ready, paid, failed or cancelled',
};
/** Free text of `minLength` to `maxLength` characters, without control characters. */
const Text = (minLength: number, maxLength: number) => Type.String({ minLength, maxLength, pattern: NO_CONTROL_CHARS_PATTERN });

const ResourceId = Type.String({ pattern: RESOURCE_ID_PATTERN });
const Name = Text(1, 200);
const Label = Type.String({ minLength: 1, maxLength: 32, pattern: LABEL_PATTERN });
const Price = Type.Integer({ minimum: 0, maximum: 100_000_000 });
const DateTime = Type.String({ format: 'date-time' });
const NullableDateTime = Type.Union([DateTime, Type.Null()]);

export const ErrorBody = Type.Object({
  code: Type.String(),
  message: Type.String(),
  details: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
});

export const EventIdParams = Type.Object({ event_id: Type.String({ pattern: EVENT_ID_PATTERN }) }, { additionalProperties: false });
export const MerchantUidParams = Type.Object({ merchant_uid: Type.String({ pattern: MERCHANT_UID_PATTERN }) }, { additionalProperties: false });

/** Every fair-rush TTL: 5 to 3600 s, like hold_ttl_seconds (rehearsals use short ones). */
const Ttl = Type.Integer({ minimum: 5, maximum: 3600 });
export const WaitingRoom = Type.Object(
  {
    mode: Type.Union([Type.Literal('fixed'), Type.Literal('dynamic')]),
    admit_per_second: Type.Integer({ minimum: 1, maximum: 10_000 }),
    max_active: Type.Integer({ minimum: 1, maximum: 1_000_000 }),
    admission_ttl_seconds: Ttl,
  },
  { additionalProperties: false },
);

export const CreateEventBody = Type.Object(
  {
    id: Type.String({ pattern: EVENT_ID_PATTERN }),
    name: Name,
    sale_opens_at: Type.Optional(DateTime),
    sale_closes_at: Type.Optional(NullableDateTime),
    hold_ttl_seconds: Type.Optional(Type.Integer({ minimum: 5, maximum: 3600 })),
    max_per_buyer: Type.Optional(Type.Union([Type.Integer({ minimum: 1, maximum: 1000 }), Type.Null()])),
    currency: Type.Optional(Type.String({ pattern: '^[A-Z]{3}$' })),
    hold_at: Type.Optional(Type.Union([Type.Literal('confirm'), Type.Literal('order')])),
    reservation_ttl_seconds: Type.Optional(Ttl),
    waiting_room: Type.Optional(WaitingRoom),
    waitlist: Type.Optional(Type.Object({ offer_ttl_seconds: Ttl }, { additionalProperties: false })),
    pools: Type.Optional(
      Type.Array(
        Type.Object({ id: ResourceId, name: Name, capacity: Type.Integer({ minimum: 1, maximum: 1_000_000 }), price: Price }, { additionalProperties: false }),
        { maxItems: 100 },
      ),
    ),
    seats: Type.Optional(
      Type.Array(
        Type.Object(
          { id: Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$' }), section: Label, row: Label, number: Label, price: Price },
          { additionalProperties: false },
        ),
        { maxItems: 200_000 },
      ),
    ),
    seat_blocks: Type.Optional(
      Type.Array(
        Type.Object(
          {
            section: Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9_.:]{0,31}$' }),
            rows: Type.Integer({ minimum: 1, maximum: 1000 }),
            seats_per_row: Type.Integer({ minimum: 1, maximum: 1000 }),
            price: Price,
          },
          { additionalProperties: false },
        ),
        { maxItems: 1000 },
      ),
    ),
  },
  { additionalProperties: false },
);

const Counts = { available: Type.Integer(), held: Type.Integer(), sold: Type.Integer() };
export const Availability = Type.Object({
  pools: Type.Array(Type.Object({ id: Type.String(), capacity: Type.Integer(), ...Counts })),
  seats: Type.Object({ total: Type.Integer(), ...Counts }),
});

export const EventBody = Type.Object({
  id: Type.String(),
  name: Type.String(),
  sale_opens_at: Type.String(),
  sale_closes_at: Type.Union([Type.String(), Type.Null()]),
  hold_ttl_seconds: Type.Integer(),
  max_per_buyer: Type.Union([Type.Integer(), Type.Null()]),
  currency: Type.String(),
  pools: Type.Array(Type.Object({ id: Type.String(), name: Type.String(), capacity: Type.Integer(), price: Type.Integer() })),
  seat_count: Type.Integer(),
  created_at: Type.String(),
  hold_at: Type.Union([Type.Literal('confirm'), Type.Literal('order')]),
  reservation_ttl_seconds: Type.Union([Type.Integer(), Type.Null()]),
  waiting_room: Type.Union([
    Type.Object({
      mode: Type.String(), admit_per_second: Type.Integer(), max_active: Type.Integer(), admission_ttl_seconds: Type.Integer(),
      /** Published once the sale opens: with it anyone can recompute the order of the early arrivals. */
      shuffle_seed: Type.Union([Type.String(), Type.Null()]),
    }),
    Type.Null(),
  ]),
  waitlist: Type.Union([Type.Object({ offer_ttl_seconds: Type.Integer() }), Type.Null()]),
  availability: Type.Optional(Availability),
});

export const SeatsQuery = Type.Object(
  {
    status: Type.Optional(Type.Union([Type.Literal('available'), Type.Literal('held'), Type.Literal('sold')])),
    limit: Type.Optional(Type.String({ pattern: '^(?:[1-9][0-9]{0,2}|1000)$' })),
    cursor: Type.Optional(Text(1, 64)),
  },
  { additionalProperties: false },
);
export const SeatsBody = Type.Object({
  seats: Type.Array(
    Type.Object({
      id: Type.String(), section: Type.String(), row: Type.String(), number: Type.String(), price: Type.Integer(),
      status: Type.Union([Type.Literal('available'), Type.Literal('held'), Type.Literal('sold')]),
    }),
  ),
  next_cursor: Type.Union([Type.String(), Type.Null()]),
});

/** What an order (or a waiting-list entry) asks for: seat ids, and quantities of pools. */
const OrderSeats = Type.Array(Text(1, 64), { minItems: 1, maxItems: 100 });
const OrderItems = Type.Array(
  Type.Object({ pool: Text(1, 64), quantity: Type.Integer({ minimum: 1, maximum: 100 }) }, { additionalProperties: false }),
  { minItems: 1, maxItems: 100 },
);
/** A waiting-list entry wants at most WAITLIST_ENTRY_MAX_PLACES places in all (the service adds them up). */
const WaitlistSeats = Type.Array(Text(1, 64), { minItems: 1, maxItems: WAITLIST_ENTRY_MAX_PLACES });
const WaitlistItems = Type.Array(
  Type.Object({ pool: Text(1, 64), quantity: Type.Integer({ minimum: 1, maximum: WAITLIST_ENTRY_MAX_PLACES }) }, { additionalProperties: false }),
  { minItems: 1, maxItems: WAITLIST_ENTRY_MAX_PLACES },
);

/** A signed buyer identity (BUYER_TOKEN_SECRET); checked by the route before anything else. */
const BuyerToken = Type.String({ minLength: 1, maxLength: BUYER_TOKEN_MAX_LENGTH, pattern: '^[A-Za-z0-9_.:~-]+$' });

/** What GET /events/:id/queue/:token gives an admitted buyer (events with a waiting room). */
const AdmissionToken = Type.String({ minLength: 1, maxLength: 256, pattern: '^[A-Za-z0-9_.:~-]+$' });

export const CreateOrderBody = Type.Object(
  {
    buyer_id: Type.String({ pattern: RESOURCE_ID_PATTERN }),
    /** With BUYER_TOKEN_SECRET: the storefront's signature of buyer_id (see the README's "Buyer identity"). */
    buyer_token: Type.Optional(BuyerToken),
    /** The PortOne API the buyer pays through (default: PORTONE_DEFAULT_API, see the README). */
    portone_api: Type.Optional(Type.Union([Type.Literal('v1'), Type.Literal('v2')])),
    /** Events with a waiting room: the token GET /events/:id/queue/:token gave the admitted buyer. */
    admission_token: Type.Optional(AdmissionToken),
    seats: Type.Optional(OrderSeats),
    items: Type.Optional(OrderItems),
  },
  { additionalProperties: false },
);
export const CreatedOrderBody = Type.Object({
  merchant_uid: Type.String(),
  event_id: Type.String(),
  amount: Type.Integer(),
  currency: Type.String(),
  status: Type.Union([Type.Literal('pending'), Type.Literal('held')]),
  hold_expires_at: Type.Optional(Type.String()),
  /** Bearer token for GET /orders/:merchant_uid; given only here, stored only as its SHA-256. */
  order_token: Type.String(),
});

export const OrderBody = Type.Object({
  merchant_uid: Type.String(),
  event_id: Type.String(),
  buyer_id: Type.String(),
  status: Type.String(),
  status_reason: Type.Union([Type.String(), Type.Null()]),
  amount: Type.Integer(),
  currency: Type.String(),
  seats: Type.Array(Type.String()),
  items: Type.Array(Type.Object({ pool: Type.String(), quantity: Type.Integer() })),
  hold_expires_at: Type.Union([Type.String(), Type.Null()]),
  tickets: Type.Array(
    Type.Object({
      id: Type.String(),
      seat: Type.Union([Type.String(), Type.Null()]),
      pool: Type.Union([Type.String(), Type.Null()]),
      serial: Type.Union([Type.Integer(), Type.Null()]),
      imp_uid: Type.String(),
      issued_at: Type.String(),
    }),
  ),
  payments: Type.Array(
    Type.Object({
      imp_uid: Type.String(),
      amount: Type.Integer(),
      cancel_amount: Type.Integer(),
      status: Type.String(),
      fail_reason: Type.Union([Type.String(), Type.Null()]),
      paid_at: Type.Union([Type.String(), Type.Null()]),
    }),
  ),
  created_at: Type.String(),
});

/** PortOne's confirm body. Unknown fields are ignored, not refused: refusing stops a real payment. */
export const ConfirmBody = Type.Object({
  imp_uid: Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$' }),
  merchant_uid: Type.String({ minLength: 1, maxLength: 80 }),
  amount: Type.Optional(Type.Union([Type.Integer({ minimum: 0, maximum: PAYMENT_AMOUNT_MAX }), Type.Null()])),
});
export const ConfirmApproved = Type.Object({ approved: Type.Literal(true), hold_expires_at: Type.String() });
/** A refusal (`code` from RefusalCodes) or a malformed request (VALIDATION_FAILED, INVALID_JSON, ...). */
export const ConfirmRefused = Type.Object({
  code: Type.String(),
  reason: Type.String(),
  message: Type.String(),
});

/** PortOne's V1 webhook (JSON or form-encoded). Unknown fields are ignored. */
export const WebhookBody = Type.Object({
  imp_uid: Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$' }),
  merchant_uid: Type.String({ minLength: 1, maxLength: 80 }),
  status: Type.String({ pattern: V1_WEBHOOK_STATUS_PATTERN }),
  cancellation_id: Type.Optional(Type.String({ maxLength: 128 })),
});
export const WebhookAccepted = Type.Object({ received: Type.Literal(true), duplicate: Type.Boolean() });

// ---- PortOne V2 ------------------------------------------------------------------------------------

/** V2 attempt ids become part of a payment key (`v2.<transactionId>`): one word, bounded. */
const V2TransactionId = Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$' });
/** V2's paymentId is dropgate's merchant_uid (checked against the order by the hold script). */
const V2PaymentId = Type.String({ minLength: 1, maxLength: 80 });
const V2Amount = Type.Integer({ minimum: 0, maximum: PAYMENT_AMOUNT_MAX });
const V2StoreId = Type.String({ minLength: 1, maxLength: 100 });

/** Confirm call, webhook version 2024-04-25. Unknown fields are ignored: PortOne adds them without notice. */
export const V2ConfirmPayload = Type.Object({
  type: Type.Literal('Transaction.Confirm'),
  timestamp: Type.Optional(Type.String({ maxLength: 64 })),
  data: Type.Object({
    paymentId: V2PaymentId,
    transactionId: V2TransactionId,
    totalAmount: Type.Optional(Type.Union([V2Amount, Type.Null()])),
    storeId: Type.Optional(V2StoreId),
  }),
});
/** Confirm call, webhook version 2024-01-01. */
export const V2ConfirmPayloadLegacy = Type.Object({
  payment_id: V2PaymentId,
  tx_id: V2TransactionId,
  total_amount: Type.Optional(Type.Union([V2Amount, Type.Null()])),
  store_id: Type.Optional(V2StoreId),
});
/** Webhook, version 2024-04-25: `type` is open-ended (unknown types are answered 200 and ignored). */
export const V2WebhookPayload = Type.Object({
  type: Type.String({ minLength: 1, maxLength: 100 }),
  timestamp: Type.Optional(Type.String({ maxLength: 64 })),
  data: Type.Optional(Type.Object({
    paymentId: Type.Optional(V2PaymentId),
    transactionId: Type.Optional(V2TransactionId),
    storeId: Type.Optional(V2StoreId),
    cancellationId: Type.Optional(Type.String({ maxLength: 128 })),
  })),
});
/** Webhook, version 2024-01-01 (`status`: `Paid`, `Ready`, `Failed`, `Cancelled`, ...). */
export const V2WebhookPayloadLegacy = Type.Object({
  payment_id: V2PaymentId,
  tx_id: V2TransactionId,
  status: Type.String({ minLength: 1, maxLength: 64 }),
  store_id: Type.Optional(V2StoreId),
});
/** A V2 confirm refusal: PortOne's browser SDK shows `errorMessage` to the buyer; `code` is ours. */
export const V2ConfirmRefused = Type.Object({ errorMessage: Type.String(), code: Type.String() });
export const V2WebhookAccepted = Type.Object({
  received: Type.Literal(true),
  duplicate: Type.Boolean(),
  /** true: a type dropgate does not act on, or a payment that is not one of its orders. */
  ignored: Type.Optional(Type.Boolean()),
});

/** The storefront's manual confirmation: sent by the buyer's browser, so strict and small. */
export const ManualConfirmBody = Type.Object(
  {
    payment_id: Type.String({ pattern: MERCHANT_UID_PATTERN }),
    payment_token: Type.String({ minLength: 1, maxLength: 2048, pattern: '^[A-Za-z0-9._~+/=-]+$' }),
    total_amount: V2Amount,
  },
  { additionalProperties: false },
);
export const ManualConfirmPaid = Type.Object({ status: Type.Literal('paid') });
export const ExtendedBody = Type.Object({
  merchant_uid: Type.String(),
  status: Type.Literal('held'),
  hold_expires_at: Type.String(),
  extensions_left: Type.Integer(),
});

export const JoinQueueBody = Type.Object(
  {
    buyer_id: Type.String({ pattern: RESOURCE_ID_PATTERN }),
    /** With BUYER_TOKEN_SECRET: the storefront's signature of buyer_id (see the README's "Buyer identity"). */
    buyer_token: Type.Optional(BuyerToken),
  },
  { additionalProperties: false },
);
export const QueueTokenParams = Type.Object(
  { event_id: Type.String({ pattern: EVENT_ID_PATTERN }), queue_token: Type.String({ minLength: 1, maxLength: 100, pattern: '^[A-Za-z0-9_.:~-]+$' }) },
  { additionalProperties: false },
);
const QueueState = Type.Union([Type.Literal('waiting'), Type.Literal('admitted'), Type.Literal('sold_out'), Type.Literal('expired')]);
export const QueueBody = Type.Object({
  state: QueueState,
  /** 1-based place among the waiting buyers (0 once admitted). */
  position: Type.Integer(),
  estimated_wait_seconds: Type.Integer(),
  admission_token: Type.Optional(Type.String()),
});
export const JoinedQueueBody = Type.Object({
  queue_token: Type.String(),
  state: QueueState,
  position: Type.Integer(),
  estimated_wait_seconds: Type.Integer(),
});

export const JoinWaitlistBody = Type.Object(
  {
    buyer_id: Type.String({ pattern: RESOURCE_ID_PATTERN }),
    /** With BUYER_TOKEN_SECRET: the storefront's signature of buyer_id (see the README's "Buyer identity"). */
    buyer_token: Type.Optional(BuyerToken),
    /** Events with a waiting room: the buyer's admission, as for an order (the list is not a way round the room). */
    admission_token: Type.Optional(AdmissionToken),
    seats: Type.Optional(WaitlistSeats),
    items: Type.Optional(WaitlistItems),
  },
  { additionalProperties: false },
);
export const WaitlistTokenParams = Type.Object(
  { event_id: Type.String({ pattern: EVENT_ID_PATTERN }), waitlist_token: Type.String({ minLength: 1, maxLength: 100, pattern: '^[A-Za-z0-9_.:~-]+$' }) },
  { additionalProperties: false },
);
export const JoinedWaitlistBody = Type.Object({ waitlist_token: Type.String(), position: Type.Integer() });
export const WaitlistBody = Type.Object({
  state: Type.Union([Type.Literal('waiting'), Type.Literal('offered'), Type.Literal('expired'), Type.Literal('sold_out')]),
  position: Type.Integer(),
  merchant_uid: Type.Optional(Type.String()),
  /** The offered order's token (read it, pay it): given only to the waiting-list token's holder. */
  order_token: Type.Optional(Type.String()),
  hold_expires_at: Type.Optional(Type.String()),
});
