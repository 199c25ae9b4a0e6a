--[[
  Returns a paid order's seats to sale (the payment was cancelled, or its tickets could not be issued)
  and sets the order's status.

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
    ARGV[2] new order status ('released' | 'refunded')

  Output:
     1  the sale was voided
     0  the order was not paid (only its status was set)
    -2  order not found
    -9  event not loaded / being rebuilt
]]
--- @include "includes/orderLines"

if redis.call('HGET', KEYS[1], 'state') ~= 'ready' then return -9 end
local o = redis.call('HMGET', KEYS[2], 'st', 'b', 'q', 's', 'i')
if not o[1] then return -2 end
if o[1] ~= 'paid' then
  if o[1] ~= 'held' then redis.call('HSET', KEYS[2], 'st', ARGV[2]) end
  return 0
end
moveLines(KEYS[3], KEYS[4], splitCsv(o[4]), splitCsv(o[5]), '', 'sold', nil)
redis.call('HINCRBY', KEYS[5], o[2], -tonumber(o[3]))
redis.call('HSET', KEYS[2], 'st', ARGV[2], 'exp', '')
-- A paid order has no hold left; make sure the expiry sweep never finds one for it.
redis.call('ZREM', KEYS[6], ARGV[1])
return 1
