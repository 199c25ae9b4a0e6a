// k6 (v1) scenario of a ticket drop against a running dropgate API: `npm run loadtest`.
//
// setup() creates an event with SEATS numbered seats and a POOL-place general-admission pool through
// the admin API; then VUS virtual buyers, for DURATION, each create an order (some seats, or places
// in the pool) and confirm it the way PortOne would (POST /portone/v1/confirm). Every confirm answer
// must be 200 {"approved": true} or a well-formed refusal {"code", "reason"}; a 5xx is allowed only
// as 503 NOT_READY / OVERLOADED (load shedding). teardown() checks that nothing was oversold.
//
// Environment (all optional except ADMIN_TOKEN):
//   BASE_URL            API base URL                         http://127.0.0.1:3000
//   ADMIN_TOKEN         bearer token for POST /admin/events  (required)
//   SEATS               numbered seats in the event          1000   (0 for none)
//   POOL                general-admission places             1000   (0 for none)
//   VUS                 concurrent buyers                    50
//   DURATION            how long buyers keep coming          30s
//   MAX_SEATS_PER_ORDER seats / places per order, 1..N       2
//   HOLD_TTL_SECONDS    the event's hold TTL                 300
//   EVENT_ID            event id (default: k6-<timestamp>)
//   CONFIRM_BUDGET_MS   confirm p99 must stay under this     3000   (the API's budget)
import http from 'k6/http';
import { check, fail } from 'k6';
import { Counter, Rate, Trend } from 'k6/metrics';
import exec from 'k6/execution';

function intEnv(name, fallback) {
  const raw = __ENV[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) fail(`${name} must be a non-negative integer, got ${JSON.stringify(raw)}`);
  return n;
}

const BASE_URL = (__ENV.BASE_URL || 'http://127.0.0.1:3000').replace(/\/+$/, '');
const SEATS = intEnv('SEATS', 1000);
const POOL = intEnv('POOL', 1000);
const VUS = Math.max(1, intEnv('VUS', 50));
const DURATION = __ENV.DURATION || '30s';
const MAX_PER_ORDER = Math.max(1, intEnv('MAX_SEATS_PER_ORDER', 2));
const HOLD_TTL_SECONDS = intEnv('HOLD_TTL_SECONDS', 300);
const BUDGET_MS = intEnv('CONFIRM_BUDGET_MS', 3000);
const SEATS_PER_ROW = 50;
const SEAT_PRICE = 99000;
const POOL_PRICE = 55000;

// Refusals a client error or 503 may carry; anything else in a 5xx is a bug.
const SHED_CODES = ['NOT_READY', 'OVERLOADED'];

const confirmDuration = new Trend('dropgate_confirm_duration', true);
const approved = new Rate('dropgate_confirm_approved');
const refusals = new Counter('dropgate_confirm_refusals');
const unexpected5xx = new Counter('dropgate_unexpected_5xx');
const malformed = new Counter('dropgate_malformed_answers');
const ordersRefused = new Counter('dropgate_orders_refused');

// Refusals (4xx, 503) are answers, not failures, for http_req_failed.
http.setResponseCallback(http.expectedStatuses({ min: 200, max: 499 }, 503));

export const options = {
  scenarios: {
    drop: {
      executor: 'constant-vus',
      vus: VUS,
      duration: DURATION,
      gracefulStop: '10s',
    },
  },
  setupTimeout: '120s',
  thresholds: {
    // The deadline: answers leave within the budget, and never after PortOne's 5 s.
    'http_req_duration{name:confirm}': [`p(99)<${BUDGET_MS}`, 'max<5000'],
    dropgate_confirm_duration: [`p(99)<${BUDGET_MS}`],
    // No 5xx except 503 NOT_READY / OVERLOADED; every answer is well formed.
    dropgate_unexpected_5xx: ['count==0'],
    dropgate_malformed_answers: ['count==0'],
    checks: ['rate>0.99'],
  },
  summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(95)', 'p(99)', 'max'],
};

function adminHeaders() {
  return { 'Content-Type': 'application/json', Authorization: `Bearer ${__ENV.ADMIN_TOKEN}` };
}

function parseJson(res) {
  try {
    return res.json();
  } catch (_) {
    return undefined;
  }
}

export function setup() {
  if (!__ENV.ADMIN_TOKEN) fail('ADMIN_TOKEN is not set: export the API\'s ADMIN_TOKEN before running the load test');
  if (SEATS === 0 && POOL === 0) fail('SEATS and POOL are both 0: the event needs some inventory');

  const eventId = __ENV.EVENT_ID || `k6-${Date.now()}`;
  const rows = Math.ceil(SEATS / SEATS_PER_ROW);
  const perRow = Math.min(SEATS, SEATS_PER_ROW);
  const body = {
    id: eventId,
    name: `k6 drop ${eventId}`,
    hold_ttl_seconds: HOLD_TTL_SECONDS,
    max_per_buyer: Math.max(4, MAX_PER_ORDER),
    currency: 'KRW',
  };
  if (SEATS > 0) body.seat_blocks = [{ section: 'K', rows, seats_per_row: perRow, price: SEAT_PRICE }];
  if (POOL > 0) body.pools = [{ id: 'ga', name: 'General admission', capacity: POOL, price: POOL_PRICE }];

  const res = http.post(`${BASE_URL}/admin/events`, JSON.stringify(body), { headers: adminHeaders(), tags: { name: 'admin_create_event' } });
  if (res.status !== 201) fail(`POST /admin/events answered ${res.status}: ${res.body}`);
  console.log(`event ${eventId}: ${rows * perRow} seats in ${rows} rows, pool of ${POOL}; ${VUS} buyers for ${DURATION} at ${BASE_URL}`);
  return { eventId, rows, perRow, pool: POOL > 0 ? 'ga' : null };
}

function randomInt(n) {
  return Math.floor(Math.random() * n);
}

function orderBody(data, buyerId) {
  const quantity = 1 + randomInt(MAX_PER_ORDER);
  const useSeats = data.rows > 0 && (data.pool === null || Math.random() < 0.5);
  if (!useSeats) return { buyer_id: buyerId, items: [{ pool: data.pool, quantity }] };
  // Adjacent seats in one row, like a buyer picking from a seat map: buyers collide on popular seats.
  const row = 1 + randomInt(data.rows);
  const first = 1 + randomInt(Math.max(1, data.perRow - quantity + 1));
  const seats = [];
  for (let i = 0; i < quantity && first + i <= data.perRow; i++) seats.push(`K-${row}-${first + i}`);
  return { buyer_id: buyerId, seats };
}

export default function (data) {
  const vu = exec.vu.idInTest;
  const iter = exec.scenario.iterationInTest;
  const buyerId = `k6-buyer-${vu}-${iter}`;

  const orderRes = http.post(`${BASE_URL}/events/${encodeURIComponent(data.eventId)}/orders`, JSON.stringify(orderBody(data, buyerId)), {
    headers: { 'Content-Type': 'application/json' },
    tags: { name: 'create_order' },
  });
  const order = parseJson(orderRes);
  if (orderRes.status !== 201) {
    // 403 (sale window, buyer limit) and 404 are answers too; they must be well formed.
    ordersRefused.add(1);
    check(orderRes, {
      'order refusal is a well-formed 4xx or 503': (r) =>
        ((r.status >= 400 && r.status < 500) || r.status === 503) && !!order && typeof order.code === 'string',
    });
    if (orderRes.status >= 500 && !(orderRes.status === 503 && order && SHED_CODES.includes(order.code))) unexpected5xx.add(1);
    return;
  }
  check(order, {
    'order created': (o) => !!o && typeof o.merchant_uid === 'string' && Number.isInteger(o.amount),
  });
  if (!order || typeof order.merchant_uid !== 'string') return;

  // PortOne calls confirm_url before approving the payment.
  const impUid = `imp_k6_${vu}_${iter}_${Date.now().toString(36)}`;
  const confirmRes = http.post(
    `${BASE_URL}/portone/v1/confirm`,
    JSON.stringify({ imp_uid: impUid, merchant_uid: order.merchant_uid, amount: order.amount }),
    { headers: { 'Content-Type': 'application/json' }, tags: { name: 'confirm' }, timeout: '10s' },
  );
  confirmDuration.add(confirmRes.timings.duration);
  const answer = parseJson(confirmRes);
  const isApproval = confirmRes.status === 200 && !!answer && answer.approved === true;
  const isRefusal =
    confirmRes.status !== 200 && !!answer && typeof answer.code === 'string' && /^[A-Z][A-Z0-9_]*$/.test(answer.code) &&
    typeof answer.reason === 'string' && answer.reason.length > 0;
  approved.add(isApproval);
  if (isRefusal) refusals.add(1, { code: answer.code });
  if (!isApproval && !isRefusal) malformed.add(1);
  const allowed5xx = confirmRes.status === 503 && isRefusal && SHED_CODES.includes(answer.code);
  if (confirmRes.status >= 500 && !allowed5xx) unexpected5xx.add(1);

  check(confirmRes, {
    'confirm answers 200 {approved:true} or a refusal {code, reason}': () => isApproval || isRefusal,
    'confirm: no 5xx except 503 NOT_READY/OVERLOADED': (r) => r.status < 500 || allowed5xx,
    'confirm: within the budget': (r) => r.timings.duration < BUDGET_MS,
  });
}

export function teardown(data) {
  const res = http.get(`${BASE_URL}/events/${encodeURIComponent(data.eventId)}`, { tags: { name: 'event_status' } });
  const event = parseJson(res);
  if (res.status !== 200 || !event || !event.availability) {
    console.warn(`GET /events/${data.eventId} answered ${res.status}; availability not checked`);
    return;
  }
  const a = event.availability;
  const pools = Array.isArray(a.pools) ? a.pools : [];
  for (const p of pools) {
    console.log(`pool ${p.id}: capacity ${p.capacity}, available ${p.available}, held ${p.held}, sold ${p.sold}`);
  }
  if (a.seats) console.log(`seats: total ${a.seats.total}, available ${a.seats.available}, held ${a.seats.held}, sold ${a.seats.sold}`);
  check(a, {
    'no pool oversold (held + sold <= capacity)': (x) => pools.every((p) => p.held + p.sold <= p.capacity),
    'no seat oversold (held + sold <= total)': (x) => !x.seats || x.seats.held + x.seats.sold <= x.seats.total,
  });
}
