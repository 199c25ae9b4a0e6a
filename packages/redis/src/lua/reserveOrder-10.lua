--[[
  hold_at "order": makes a new order visible and reserves every seat and pool quantity of it in the
  same step, or nothing (the order is then not written either). Written after the order is in
  Postgres. The reservation is a hold without a payment yet (imp ''), handed to the workers like any
  hold (recorded in Postgres, expired by the sweep); the confirm approves it (see placeHold).
  Time comes from the caller (ARGV[6]).

  A waiting-list offer (ARGV[9] set) is made only for an entry still waiting, and marks it offered in
  the same step: the list's lock (10 s) keeps one step at a time only while a step is quick, and a
  step stalled past it (a slow Postgres, a pause) goes on beside the next one, both having picked the
  same entries; whichever reserves first makes the entry's one offer, the other is refused (-23) and
  withdraws its order (attack round 28B: one entry got two orders, each holding a place).

  Input:
    KEYS[1] meta      {ev:E}:meta      hash: state, opens, closes, ttl, max
    KEYS[2] order     {ev:E}:o:<uid>   hash (see placeHold), plus x: extensions used
    KEYS[3] seats     {ev:E}:seat      and its status indexes (named from it by moveLines)
    KEYS[4] counts    {ev:E}:cnt
    KEYS[5] buyers    {ev:E}:buyer
    KEYS[6] holds     {ev:E}:holds
    KEYS[7] handoff   {ev:E}:handoff
    KEYS[8] waitlist  {ev:E}:wl        zset: waiting buyer -> arrival number (see joinWaitlist)
    KEYS[9] entries   {ev:E}:wl:e      hash: buyer -> JSON entry
    KEYS[10] offers   {ev:E}:wl:off    zset: buyer with an open offer -> its reservation's expiry
    ARGV[1] merchant_uid
    ARGV[2] amount
    ARGV[3] buyer id
    ARGV[4] seats csv
    ARGV[5] items csv (pool,qty,...)
    ARGV[6] now (ms)
    ARGV[7] reservation ttl (ms)
    ARGV[8] 'v2' for an order paid through PortOne V2 (field api, see createOrder), else ''
    ARGV[9] a waiting-list offer for buyer ARGV[3]: their entry as offered (JSON, naming this order
            and its token), stored once the places are reserved; '' for any other order

  Output: { code, expires_at_ms }
     1  created and reserved
     0  the order existed already (nothing changed)
    -1  event not loaded in Redis
    -4  sale not open
    -5  sale closed
    -6  buyer limit
    -7  sold out
    -9  event being rebuilt, or its state stamped by another replication history (a failover)
   -21  withdrawn as an orphan meanwhile (marked 'w:<uid>' in meta by withdrawOrphans: this step came
        too late, and Postgres no longer has the order); nothing written
   -23  a waiting-list offer for an entry no longer waiting (another step offered it, or it left the
        line); nothing written
]]
--- @include "includes/orderLines"
--- @include "includes/replid"

local meta = redis.call('HMGET', KEYS[1], 'state', 'opens', 'closes', 'max')
if not meta[1] then return { -1, 0 } end
if meta[1] ~= 'ready' then return { -9, 0 } end
if redis.call('HEXISTS', KEYS[1], 'w:' .. ARGV[1]) == 1 then return { -21, 0 } end
if redis.call('EXISTS', KEYS[2]) == 1 then return { 0, 0 } end
if ARGV[9] ~= '' and not redis.call('ZSCORE', KEYS[8], ARGV[3]) then return { -23, 0 } end

local now = tonumber(ARGV[6])
if now < tonumber(meta[2]) then return { -4, 0 } end
if meta[3] and meta[3] ~= '' and now >= tonumber(meta[3]) then return { -5, 0 } end

local seats = splitCsv(ARGV[4])
local items = splitCsv(ARGV[5])
local qty = #seats
for i = 2, #items, 2 do qty = qty + tonumber(items[i]) end

if pastBuyerLimit(KEYS[5], ARGV[3], qty, tonumber(meta[4]) or 0) then return { -6, 0 } end
if not linesFree(KEYS[3], KEYS[4], seats, items) then return { -7, 0 } end
-- Nothing is taken on state not known to be whole (see placeHold and stampedHere).
if not stampedHere(KEYS[1]) then return { -9, 0 } end

moveLines(KEYS[3], KEYS[4], seats, items, 'h:' .. ARGV[1], nil, 'held')
redis.call('HINCRBY', KEYS[5], ARGV[3], qty)
local exp = now + tonumber(ARGV[7])
redis.call('HSET', KEYS[2], 'a', ARGV[2], 'b', ARGV[3], 's', ARGV[4], 'i', ARGV[5], 'q', qty,
  'st', 'held', 'exp', exp, 'seq', 1, 'imp', '', 'imps', '', 'x', 0)
if ARGV[8] == 'v2' then redis.call('HSET', KEYS[2], 'api', 'v2') end
redis.call('ZADD', KEYS[6], exp, ARGV[1])
redis.call('XADD', KEYS[7], '*', 'uid', ARGV[1], 'imp', '', 'seq', 1, 'exp', exp, 'at', now)
if ARGV[9] ~= '' then
  -- The buyer leaves the line with this offer, looked at again at its expiry.
  redis.call('ZREM', KEYS[8], ARGV[3])
  redis.call('HSET', KEYS[9], ARGV[3], ARGV[9])
  redis.call('ZADD', KEYS[10], exp, ARGV[3])
end
return { 1, exp }
