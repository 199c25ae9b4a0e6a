--[[
  POST /orders/:merchant_uid/extend: renews a live reservation (hold_at "order", no payment started
  on it yet) for the reservation TTL from now, at most ARGV[4] times in the order's life. Each renewal
  is a new hold number handed to the workers, so the record follows. A reservation that lapsed is not
  renewed here (the confirm may still renew it while unswept, see placeHold); one a payment rides on
  is covered by that payment's confirm.

  Input:
    KEYS[1] meta      {ev:E}:meta      hash: state
    KEYS[2] order     {ev:E}:o:<uid>   hash: st, exp, seq, imps, x (extensions used; absent after a
                                       rebuild: seq - 1)
    KEYS[3] holds     {ev:E}:holds     zset: uid scored by hold expiry (ms)
    KEYS[4] handoff   {ev:E}:handoff   stream (see placeHold)
    ARGV[1] merchant_uid
    ARGV[2] now (ms)
    ARGV[3] reservation ttl (ms)
    ARGV[4] most extensions

  Output: { code, expires_at_ms, extensions_left }
     1  extended
    -2  order not found
    -9  event not loaded or being rebuilt, or its state stamped by another replication history
   -16  nothing to extend: not held, lapsed, or a payment is under way
   -17  extended as often as allowed
]]
--- @include "includes/replid"
if redis.call('HGET', KEYS[1], 'state') ~= 'ready' then return { -9, 0, 0 } end
local o = redis.call('HMGET', KEYS[2], 'st', 'exp', 'seq', 'imps', 'x')
if not o[1] then return { -2, 0, 0 } end
local now = tonumber(ARGV[2])
if o[1] ~= 'held' or (o[4] and o[4] ~= '') or tonumber(o[2]) <= now then return { -16, 0, 0 } end
-- Rebuilt from the record (no x): every hold number after the first was an extension.
local used = tonumber(o[5] or (tonumber(o[3]) - 1))
local most = tonumber(ARGV[4])
if used >= most then return { -17, tonumber(o[2]), 0 } end
-- A hold on state not known to be whole may be one the dead primary had ended (see stampedHere).
if not stampedHere(KEYS[1]) then return { -9, 0, 0 } end
local exp = math.max(tonumber(o[2]), now + tonumber(ARGV[3]))
local seq = tonumber(o[3]) + 1
redis.call('HSET', KEYS[2], 'exp', exp, 'seq', seq, 'x', used + 1)
redis.call('ZADD', KEYS[3], exp, ARGV[1])
redis.call('XADD', KEYS[4], '*', 'uid', ARGV[1], 'imp', '', 'seq', seq, 'exp', exp, 'at', now)
return { 1, exp, most - used - 1 }
