--[[
  Takes back a hold that a V2 manual confirmation took for a payment attempt PortOne then refused
  (invalid token, mismatch, PG error), and forgets the answer remembered for that attempt, so a later
  request for it (the genuine buyer's, after someone posted a forged token) is decided afresh instead
  of being refused by a remembered refusal (undoHold remembers one; this script must not). Only a hold
  the attempt took itself is released, and only when no other attempt rides on it meanwhile (then the
  attempt just gets off it); a hold it rode on or renewed is left to its payments and to expiry.

  Input:
    KEYS[1] order     {ev:E}:o:<uid>
    KEYS[2] answers   {ev:E}:o:<uid>:d  hash: imp_uid -> "code|exp|seq|m|rid" (see placeHold)
    KEYS[3] seats     {ev:E}:seat
                      and its status indexes {ev:E}:seat:available|held|sold (named from it by
                      moveLines: same hash tag, same slot)
    KEYS[4] counts    {ev:E}:cnt
    KEYS[5] buyers    {ev:E}:buyer
    KEYS[6] holds     {ev:E}:holds
    ARGV[1] merchant_uid
    ARGV[2] payment key of the attempt (v2.<transactionId>)

  Output:
     1  the hold this attempt took was released
     2  the attempt was a reservation's first payment (placeHold code 4): taken off it, and the hold is
        the buyer's reservation again with its own expiry, as dropPayment leaves a declined card's
        (attack round 27B: it stayed held for a hold TTL, renewable, with nothing approved)
     0  no hold released: the attempt took none (refused, rode on or renewed a hold), that hold
        ended, another attempt rides on it (this one was taken off it), or the event is being loaded
]]
--- @include "includes/orderLines"

if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local cached = redis.call('HGET', KEYS[2], ARGV[2])
if not cached then return 0 end
redis.call('HDEL', KEYS[2], ARGV[2])
local code, _, seq = string.match(cached, '^(-?%d+)|(%d*)|(%d*)|')
if code ~= '1' and code ~= '4' then return 0 end
-- Not while the event's state is being loaded (written in several pipelines): the load writes what the
-- record says, and the workers end a hold whose payment PortOne refused.
local tag = string.match(KEYS[1], '^{[^}]*}')
if redis.call('HGET', tag .. ':meta', 'state') ~= 'ready' then return 0 end

local o = redis.call('HMGET', KEYS[1], 'st', 'seq', 'b', 'q', 's', 'i', 'imps', 'imp', 'rv')
if o[1] ~= 'held' or o[2] ~= seq then return 0 end
-- Another attempt rides on this hold meanwhile: only this one gets off it.
if leaveHold(KEYS[1], o[7], o[8], ARGV[2]) then return 0 end
if code == '4' then
  -- A reservation's hold: back to the buyer's reservation, its own expiry, no payment on it.
  local rv = tonumber(o[9])
  if not rv then return 0 end
  redis.call('HSET', KEYS[1], 'imps', '', 'imp', '')
  backToReservation(KEYS[1], KEYS[6], ARGV[1], rv)
  return 2
end
-- 'released' (as a failed payment leaves an order; it can be paid again), not 'pending' as undoHold
-- leaves it: the hold may be in the record already (PortOne answered after the hand-off was relayed),
-- and the expiry's reconciliation ends a recorded hold only for an order Redis has released.
endHold(KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[1], ARGV[1], o[5], o[6], o[3], o[4], 'released')
return 1
