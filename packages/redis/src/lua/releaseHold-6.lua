--[[
  Ends an order's hold without a sale: the payment failed or was cancelled (released), or the hold ran
  out (expired). Its seats and pool quantities go back on sale.

  Input:
    KEYS[1] meta      {ev:E}:meta
    KEYS[2] order     {ev:E}:o:<uid>
    KEYS[3] seats     {ev:E}:seat
                      and its status indexes {ev:E}:seat:available|held|sold (named from it by
                      moveLines: same hash tag, same slot)
    KEYS[4] counts    {ev:E}:cnt
    KEYS[5] buyers    {ev:E}:buyer
    KEYS[6] holds     {ev:E}:holds
    ARGV[1] merchant_uid
    ARGV[2] hold seq to release ('' = whichever hold is live)
    ARGV[3] new order status: 'released' | 'expired' | 'refunded' (closed: no confirm holds it again)
    ARGV[4] now (ms)
    ARGV[5] '1' = only when the hold is overdue at ARGV[4]

  Output:
     1  released
     0  the order holds nothing (already ended; a non-paid order is still marked refunded when asked)
    -2  order not found
    -9  event not loaded / being rebuilt
   -11  superseded: the live hold has another seq
   -12  not overdue: the hold was renewed
]]
--- @include "includes/orderLines"

if redis.call('HGET', KEYS[1], 'state') ~= 'ready' then return -9 end
local o = redis.call('HMGET', KEYS[2], 'st', 'seq', 'exp', 'b', 'q', 's', 'i')
if not o[1] then return -2 end
if o[1] ~= 'held' then
  -- A refunded order is closed even when it held nothing (its money came after the hold ended).
  if ARGV[3] == 'refunded' and o[1] ~= 'paid' then redis.call('HSET', KEYS[2], 'st', 'refunded') end
  return 0
end
if ARGV[2] ~= '' and ARGV[2] ~= o[2] then return -11 end
if ARGV[5] == '1' and tonumber(o[3]) > tonumber(ARGV[4]) then return -12 end
endHold(KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[2], ARGV[1], o[6], o[7], o[4], o[5], ARGV[3])
return 1
