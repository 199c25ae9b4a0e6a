--[[
  Takes a payment off an order's live hold after PortOne said it is not a payment of this order
  (unknown to PortOne, another order's, or another amount), or that it failed or was cancelled. When
  no other payment rides on the hold, the hold is released and its seats go back on sale, unless the
  hold is a reservation (hold_at "order", placeHold code 4): that goes back to being the buyer's
  reservation, with no payment and its own expiry (the one it had before the confirm pushed it out).

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
    ARGV[2] imp_uid that failed verification
    ARGV[3] hold seq the payment was approved on

  Output:
     1  the hold was released (no other payment rode on it)
     0  the payment was taken off; the hold stays for the others (or it had ended or moved on)
     2  the payment was taken off; the hold is the buyer's reservation again (no payment on it)
    -2  order not found
    -9  event not loaded / being rebuilt
]]
--- @include "includes/orderLines"

if redis.call('HGET', KEYS[1], 'state') ~= 'ready' then return -9 end
local o = redis.call('HMGET', KEYS[2], 'st', 'seq', 'b', 'q', 's', 'i', 'imps', 'imp', 'rv')
if not o[1] then return -2 end

-- The workers have PortOne's word on a payment of the order: another unsigned confirm may take a hold
-- again (see placeHold: unchecked).
redis.call('HDEL', KEYS[2], 'uh')
local kept = otherPayments(o[7], ARGV[2])
redis.call('HSET', KEYS[2], 'imps', table.concat(kept, ','))
if o[8] == ARGV[2] then redis.call('HSET', KEYS[2], 'imp', kept[1] or '') end

if o[1] ~= 'held' or o[2] ~= ARGV[3] or #kept > 0 then return 0 end
local rv = tonumber(o[9])
if rv then
  -- A reservation's hold: no payment on it was real (a forged confirm, a declined card). It goes back
  -- to being the buyer's reservation as it was before the payment began, its own expiry included (the
  -- confirm had pushed it out to cover the PG's approval): neither on sale nor lengthened. Lapsed by
  -- now, the sweep expires it like any reservation. Its buyer may extend it (within its bound) and pay.
  backToReservation(KEYS[2], KEYS[6], ARGV[1], rv)
  return 2
end
endHold(KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[2], ARGV[1], o[5], o[6], o[3], o[4], 'released')
return 1
