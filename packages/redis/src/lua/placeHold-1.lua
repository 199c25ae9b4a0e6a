--[[
  Decides a PortOne confirm in one round trip: holds every seat and pool quantity of the order, or
  nothing, and hands every new hold (and every payment approved on a live hold) to the workers, which
  verify the payment with PortOne at once. Time comes from the caller (ARGV[3]); no wall clock is read.
  Reservations (hold_at "order"): a live reservation taken at order creation (reserveOrder) is approved and extended
  to cover the PG's approval (code 4).

  Nothing is approved on state not known to be whole: an event stamped by another replication history
  (a failover promoted a replica that may lack holds and sales its primary acknowledged) answers -9,
  like an event being rebuilt, until the guard rebuilds it from the record (see finishLoad, stampedHere).
  Checked just before an approval writes anything, so refusals and replays do not pay for it.

  What a caller can make this script store is bounded: nothing for an order that does not exist, and
  for an existing order at most `payments` remembered answers, `payments` payments on one hold and
  `holds` holds in the order's life (ARGV[4]). A remembered answer is replayed only for the same request: the same
  order (the answers live in the order's own hash); a wrong amount is refused afresh every time and
  remembered nowhere.

  Input: one key, the order's. Each key and argument of a call costs the API and Redis about a
  microsecond a confirm, so the event's other keys are named here from the order key's hash tag (as
  keys.ts names them): they share its cluster slot, which the one key routes the call to, as the
  seat indexes named by moveLines always have. Redis checks the slot of the declared key only, so an
  event's keys must move together in a slot migration (as the seat indexes always had to).
    KEYS[1] order     {ev:E}:o:<uid>   hash: a amount, b buyer, s seats, i items, q tickets, st, exp, seq,
                                       imp (the payment that took the hold), imps (every payment on it),
                                       rv (the hold is a reservation a payment was approved on: the
                                       reservation's own expiry, ms; gone once the hold ends),
                                       api ('v2': paid through PortOne V2, so no V1 confirm is taken),
                                       uh (a hold a V1 confirm took that the workers have not yet
                                       checked with PortOne: see unchecked below)
    named from it:
      meta            {ev:E}:meta      hash: state, opens, closes, ttl, max
      answers         {ev:E}:o:<uid>:d hash: imp_uid -> "code|exp|seq|1|rid", the answer given to that
                                       request (the amount right or absent; 0 in place of 1: an answer
                                       to a wrong amount, remembered by an earlier version) and the id
                                       of the request it was decided for (a replay keeps it: undoHold
                                       takes back only what its own request took)
      seats           {ev:E}:seat      hash: seat id -> '' free | 'h:<uid>' held | 's:<uid>' sold
                                       and its status indexes {ev:E}:seat:available|held|sold (zsets,
                                       named by moveLines)
      counts          {ev:E}:cnt       hash: seats_total/held/sold, p:<pool>:cap/held/sold
      buyers          {ev:E}:buyer     hash: buyer id -> tickets held or bought
      holds           {ev:E}:holds     zset: uid scored by hold expiry (ms)
      handoff         {ev:E}:handoff   stream: uid, imp, seq, exp, at, ride ('1': approved on a live hold)

    ARGV[1] imp_uid
    ARGV[2] amount ('' when PortOne did not send one)
    ARGV[3] now (ms)
    ARGV[4] limits "ttl:payments:holds", fixed per process: how long an answer is remembered (s), most
            payments (imp_uids) one order may see, most holds one order may take
    ARGV[5] the request's id (unique per confirm request; '' when the caller has none)

  Output: { code, expires_at_ms, seq, replayed }
     1  approved: a new hold was taken
     2  approved on the order's live hold (the buyer retried the payment)
     3  approved: the order's hold was renewed under a new hold number: it had lapsed (still unswept,
        so nobody else has its seats), or a retried payment came when too little of it was left for the
        PG to approve in (under half the hold TTL, at most a minute: attack round 20B saw a retry
        approved with 0.5 s left, the seats resold at expiry and the payment refunded)
     4  approved on the order's live reservation (hold_at "order", its first payment): the reservation
        now covers the PG's approval (expiry at least now + hold ttl) under a new hold number
    -1  event not loaded in Redis
    -2  order not found, or a V1 confirm of a V2 order (nothing remembered)
    -3  amount mismatch (nothing remembered)
    -4  sale not open
    -5  sale closed
    -6  buyer limit
    -7  sold out
    -8  already paid
    -9  event being rebuilt, or its state stamped by another replication history (nothing taken or
        remembered: the same request is decided afresh once the event is rebuilt)
   -10  refused for the deadline (remembered by undoHold)
   -13  too many payment attempts for this order (nothing remembered)
   -14  the order is closed (refunded)
   -22  a V1 confirm would take or renew a hold while the order's last V1-taken hold is not yet checked
        with PortOne (nothing remembered: the same request is decided afresh once it is)
]]
--- @include "includes/orderLines"
--- @include "includes/replid"

local orderKey = KEYS[1]
local tag = string.match(orderKey, '^{[^}]*}')
local uid = string.sub(orderKey, #tag + 4)
local metaKey, answersKey = tag .. ':meta', orderKey .. ':d'
local seatKey, cntKey, buyersKey, holdsKey, handoffKey = tag .. ':seat', tag .. ':cnt', tag .. ':buyer', tag .. ':holds', tag .. ':handoff'
local imp = ARGV[1]
local rid = ARGV[5] or ''
local now = tonumber(ARGV[3])
local ttl, maxImps, maxHolds = string.match(ARGV[4], '^(%d+):(%d+):(%d+)$')
ttl, maxImps, maxHolds = tonumber(ttl), tonumber(maxImps), tonumber(maxHolds)

local meta = redis.call('HMGET', metaKey, 'state', 'opens', 'closes', 'ttl', 'max')
if not meta[1] then return { -1, 0, 0, 0 } end
if meta[1] ~= 'ready' then return { -9, 0, 0, 0 } end

local o = redis.call('HMGET', orderKey, 'a', 'b', 's', 'i', 'q', 'st', 'exp', 'seq', 'imps', 'api', 'uh')
if not o[1] then return { -2, 0, 0, 0 } end
-- A V1 confirm is unsigned: anyone who knows a merchant_uid can send one. V2 payment keys ('v2.<txId>')
-- come from PortOne's signed confirm or from a manual confirmation that read the payment from PortOne.
local unsigned = string.sub(imp, 1, 3) ~= 'v2.'
-- An order paid through PortOne V2 takes only V2 confirms: an unsigned V1 confirm naming it is a
-- stranger's, and is not its to count, hold or remember.
if o[10] == 'v2' and unsigned then return { -2, 0, 0, 0 } end

-- A wrong amount gets the same answer every time (an order's amount never changes), so it is neither
-- remembered nor counted against the order's payments: forged confirms with a wrong amount cannot use
-- up the answers the order's real payment needs.
if ARGV[2] ~= '' and tonumber(ARGV[2]) ~= tonumber(o[1]) then return { -3, 0, 0, 0 } end

local cached = redis.call('HGET', answersKey, imp)
if cached then
  local code, exp, seq, m = string.match(cached, '^(-?%d+)|(%d*)|(%d*)|(%d)')
  if m == '1' then return { tonumber(code), tonumber(exp) or 0, tonumber(seq) or 0, 1 } end
  -- An answer remembered for a wrong amount (by an earlier version): this request is decided afresh.
elseif redis.call('HLEN', answersKey) >= maxImps then
  return { -13, 0, 0, 0 }
end

local function decide(code, exp, seq)
  redis.call('HSET', answersKey, imp, code .. '|' .. (exp or '') .. '|' .. (seq or '') .. '|1|' .. rid)
  redis.call('EXPIRE', answersKey, ttl)
  return { code, exp or 0, seq or 0, 0 }
end

local st = o[6]
if st == 'paid' then return decide(-8) end
if st == 'refunded' then return decide(-14) end

local holdMs = tonumber(meta[4])
local imps = o[9] or ''

-- Unchecked: an unsigned confirm that takes or renews a hold (codes 1, 3, 4) marks the order 'uh' until
-- a worker has PortOne's word on the order's payments (verification, an outcome, the expiry's look:
-- markChecked; dropPayment; undoHold takes back its own). Another such hold waits for that word. While
-- PortOne's REST API answered, made-up confirms were taken off within seconds, and the next could take
-- the places again, at most HOLDS_PER_ORDER_MAX times. While it is down nothing could take them off,
-- and made-up confirms alone renewed a hold each time it was half gone, then took a new one once the
-- expiry's grace ended it: about 43 minutes of places kept from buyers at the defaults (attack round
-- 27B). Now it is one hold (its TTL plus the grace). A genuine buyer is checked within milliseconds of
-- the confirm; while PortOne is down, their retry still rides on the live hold (code 2).
local function unchecked()
  return unsigned and o[11] == '1'
end
local function markUnchecked()
  if unsigned then redis.call('HSET', orderKey, 'uh', '1') end
end

local function addImp()
  if imps == '' then return imp end
  for part in string.gmatch(imps, '([^,]+)') do
    if part == imp then return imps end
  end
  return imps .. ',' .. imp
end

if st == 'held' then
  local exp = tonumber(o[7])
  local seq = tonumber(o[8])
  local riding = #splitCsv(imps)
  if exp > now and imps == '' then
    -- A reservation taken at order creation, and this is its first payment: it becomes the payment's
    -- hold, lasting at least the hold TTL from now, so it cannot lapse while the PG approves.
    if seq >= maxHolds then return { -13, 0, 0, 0 } end
    if unchecked() then return { -22, 0, 0, 0 } end
    if not stampedHere(metaKey) then return { -9, 0, 0, 0 } end
    markUnchecked()
    exp = math.max(exp, now + holdMs)
    seq = seq + 1
    -- rv: the reservation's own expiry. Should no payment on the hold turn out real, it goes back to
    -- being the buyer's reservation with that expiry (dropPayment), neither on sale nor lengthened.
    redis.call('HSET', orderKey, 'exp', exp, 'seq', seq, 'imp', imp, 'imps', imp, 'rv', o[7])
    redis.call('ZADD', holdsKey, exp, uid)
    redis.call('XADD', handoffKey, '*', 'uid', uid, 'imp', imp, 'seq', seq, 'exp', exp, 'at', now)
    return decide(4, exp, seq)
  end
  if exp - now >= math.min(math.floor(holdMs / 2), 60000) then
    -- Every payment riding on this hold is verified with PortOne and asked about before expiry.
    if riding >= maxImps then return { -13, 0, 0, 0 } end
    if not stampedHere(metaKey) then return { -9, 0, 0, 0 } end
    redis.call('HSET', orderKey, 'imps', addImp())
    redis.call('XADD', handoffKey, '*', 'uid', uid, 'imp', imp, 'seq', seq, 'exp', exp, 'at', now, 'ride', '1')
    return decide(2, exp, seq)
  end
  -- Lapsed but not yet swept (the seats are still this order's), or too near its end for the PG to
  -- approve in: renew them under a new hold number (an expiry deciding on the old one then leaves it).
  -- The order's bound on holds bounds how long payments can keep it; a sale that closed takes no
  -- new hold, a renewed one included (attack round 20B: renewed after the close, while a new order
  -- at the same instant was refused SALE_CLOSED).
  if seq >= maxHolds then return { -13, 0, 0, 0 } end
  if meta[3] and meta[3] ~= '' and now >= tonumber(meta[3]) then return decide(-5) end
  if unchecked() then return { -22, 0, 0, 0 } end
  if not stampedHere(metaKey) then return { -9, 0, 0, 0 } end
  markUnchecked()
  exp = now + holdMs
  seq = seq + 1
  redis.call('HSET', orderKey, 'exp', exp, 'seq', seq, 'imp', imp, 'imps', addImp())
  redis.call('HDEL', orderKey, 'rv')
  redis.call('ZADD', holdsKey, exp, uid)
  redis.call('XADD', handoffKey, '*', 'uid', uid, 'imp', imp, 'seq', seq, 'exp', exp, 'at', now)
  return decide(3, exp, seq)
end

if now < tonumber(meta[2]) then return decide(-4) end
if meta[3] and meta[3] ~= '' and now >= tonumber(meta[3]) then return decide(-5) end

local prevSeq = tonumber(o[8]) or 0
if prevSeq >= maxHolds then return { -13, 0, 0, 0 } end
if unchecked() then return { -22, 0, 0, 0 } end

local qty = tonumber(o[5])
if pastBuyerLimit(buyersKey, o[2], qty, tonumber(meta[5]) or 0) then return decide(-6) end

local seats = splitCsv(o[3])
local items = splitCsv(o[4])
if not linesFree(seatKey, cntKey, seats, items) then return decide(-7) end
if not stampedHere(metaKey) then return { -9, 0, 0, 0 } end

markUnchecked()
moveLines(seatKey, cntKey, seats, items, 'h:' .. uid, nil, 'held')
-- Counted even without a limit, so a limit and the buyer metrics stay right after a rebuild.
redis.call('HINCRBY', buyersKey, o[2], qty)
local exp = now + holdMs
local seq = prevSeq + 1
redis.call('HSET', orderKey, 'st', 'held', 'exp', exp, 'seq', seq, 'imp', imp, 'imps', imp)
redis.call('HDEL', orderKey, 'rv')
redis.call('ZADD', holdsKey, exp, uid)
redis.call('XADD', handoffKey, '*', 'uid', uid, 'imp', imp, 'seq', seq, 'exp', exp, 'at', now)
return decide(1, exp, seq)
