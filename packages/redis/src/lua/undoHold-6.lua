--[[
  Takes back an approval that could not leave within the deadline budget, and makes the refusal the
  remembered answer for this request. Sent once placeHold's answer shows a new approval that came too
  late (never for a replayed one: that was sent in time to the request that took it).

  Input:
    KEYS[1] order     {ev:E}:o:<uid>
    KEYS[2] answers   {ev:E}:o:<uid>:d  hash: imp_uid -> "code|exp|seq|m" (see placeHold)
    KEYS[3] seats     {ev:E}:seat
                      and its status indexes {ev:E}:seat:available|held|sold (named from it by
                      moveLines: same hash tag, same slot)
    KEYS[4] counts    {ev:E}:cnt
    KEYS[5] buyers    {ev:E}:buyer
    KEYS[6] holds     {ev:E}:holds
    ARGV[1] merchant_uid
    ARGV[2] imp_uid
    ARGV[3] answer ttl (s)

  Output:
     1  the hold this imp_uid took was released
     0  nothing was held for this imp_uid (refused, on an earlier live hold, or never ran), or another
        payment was approved on its hold since (a retry riding on it, placeHold code 2): the hold stays
        for that one and only this imp_uid comes off it (attack round 20B: the undo released seats
        whose other payment PortOne was already approving, and another buyer took them)
]]
--- @include "includes/orderLines"

-- Nothing is remembered for an order that does not exist (placeHold stores nothing for it either).
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local cached = redis.call('HGET', KEYS[2], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[2], '-10|||1')
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[3]))
if not cached then return 0 end
local code, _, seq = string.match(cached, '^(-?%d+)|(%d*)|(%d*)|')
if code ~= '1' then return 0 end

local o = redis.call('HMGET', KEYS[1], 'st', 'seq', 'b', 'q', 's', 'i', 'imps', 'imp')
if o[1] ~= 'held' or o[2] ~= seq then return 0 end
if leaveHold(KEYS[1], o[7], o[8], ARGV[2]) then return 0 end
endHold(KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[1], ARGV[1], o[5], o[6], o[3], o[4], 'pending')
return 1
