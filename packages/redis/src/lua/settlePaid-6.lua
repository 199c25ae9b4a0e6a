--[[
  Makes a paid order's seats sold. From a live hold this is a commit; without one (the hold expired,
  was lost, or the PG never called confirm) the seats are taken again if they are still free.
  A payment on a live hold passed the buyer limit when the hold was taken. One taken again without a
  hold is checked against it now (ARGV[2] '1'): with hold_at "confirm" a pending order holds nothing,
  so a buyer can make many orders within the limit and pay each without a confirm (a payment window
  opened without confirm_url), or pay a reservation after it lapsed and a new one took its count
  (attack round 26B: max_per_buyer 2, six tickets). Past it, the caller refunds the payment.

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
    ARGV[2] '1': apply the event's max_per_buyer to a retake (a payment the record has paid already is
            made sold again without it)

  Output:
     1  committed from the live hold
     2  taken again without a hold
     0  already paid
    -2  order not found
    -6  over the buyer limit (a retake with ARGV[2] '1'; nothing changed)
    -7  sold out: some seat or pool quantity is gone
   -14  the order is closed (refunded): its seats are never taken again
    -9  event not loaded / being rebuilt, or its state stamped by another replication history
]]
--- @include "includes/orderLines"
--- @include "includes/replid"

if redis.call('HGET', KEYS[1], 'state') ~= 'ready' then return -9 end
local o = redis.call('HMGET', KEYS[2], 'st', 'b', 'q', 's', 'i')
if not o[1] then return -2 end
if o[1] == 'paid' then return 0 end
if o[1] == 'refunded' then return -14 end
local seats, items = splitCsv(o[4]), splitCsv(o[5])
-- Nothing is committed or taken again on state not known to be whole (a failover): the promoted
-- replica may show a hold the dead primary had ended, or places free that it had given to another
-- order. The job retries once the event is rebuilt from the record (see stampedHere).
if not stampedHere(KEYS[1]) then return -9 end
local sold = 's:' .. ARGV[1]

if o[1] == 'held' then
  moveLines(KEYS[3], KEYS[4], seats, items, sold, 'held', 'sold')
  redis.call('HSET', KEYS[2], 'st', 'paid', 'exp', '')
  redis.call('ZREM', KEYS[6], ARGV[1])
  return 1
end

for i = 1, #seats do
  if redis.call('HGET', KEYS[3], seats[i]) ~= '' then return -7 end
end
for i = 1, #items, 2 do
  local p = redis.call('HMGET', KEYS[4], 'p:' .. items[i] .. ':cap', 'p:' .. items[i] .. ':held', 'p:' .. items[i] .. ':sold')
  if tonumber(p[2]) + tonumber(p[3]) + tonumber(items[i + 1]) > tonumber(p[1]) then return -7 end
end
if ARGV[2] == '1' and pastBuyerLimit(KEYS[5], o[2], tonumber(o[3]), tonumber(redis.call('HGET', KEYS[1], 'max') or '0') or 0) then return -6 end
moveLines(KEYS[3], KEYS[4], seats, items, sold, nil, 'sold')
redis.call('HINCRBY', KEYS[5], o[2], tonumber(o[3]))
redis.call('HSET', KEYS[2], 'st', 'paid', 'exp', '')
return 2
