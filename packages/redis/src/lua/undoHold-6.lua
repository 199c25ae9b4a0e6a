--[[
  Takes back an approval that could not leave within the deadline budget, and makes the refusal the
  remembered answer for this request. Sent on the same connection right after placeHold when the
  answer is not back in time, so Redis runs it after placeHold even behind a paused or slow server,
  and even when the API gives up on both commands or loses the connection meanwhile (attack round 24).
  Only what this request itself decided is touched: an answer remembered for another request with the
  same imp_uid (this one replayed it, and it was sent in time to that one) stays, with its hold
  (attack round 23A: a slow replay of an approval released the hold PortOne was approving on).
  Nothing is released while the event's state is being loaded (its parts are written in several
  pipelines; the load writes what the record says, and the workers end a hold whose payment failed).

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
    ARGV[2] imp_uid
    ARGV[3] answer ttl (s)
    ARGV[4] the request's id (as given to placeHold)

  Output:
     1  the hold this imp_uid took was released
     0  nothing was held for this imp_uid by this request (refused, on an earlier live hold, never ran,
        another request's answer), the event is being loaded, or another payment was approved on its
        hold since (a retry riding on it, placeHold code 2): the hold stays for that one and only this
        imp_uid comes off it (attack round 20B: the undo released seats whose other payment PortOne
        was already approving, and another buyer took them)
]]
--- @include "includes/orderLines"

-- Nothing is remembered for an order that does not exist (placeHold stores nothing for it either).
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local mine = ARGV[4] or ''
local cached = redis.call('HGET', KEYS[2], ARGV[2])
if cached then
  -- An answer without a request id was remembered by an earlier version, for a request of its own:
  -- never this one's (attack round 25).
  local rid = string.match(cached, '^%-?%d+|%d*|%d*|%d|(.*)$')
  if rid ~= mine then return 0 end
end
redis.call('HSET', KEYS[2], ARGV[2], '-10|||1|' .. mine)
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[3]))
if not cached then return 0 end
local code, _, seq = string.match(cached, '^(-?%d+)|(%d*)|(%d*)|')
if code ~= '1' then return 0 end
local tag = string.match(KEYS[1], '^{[^}]*}')
if redis.call('HGET', tag .. ':meta', 'state') ~= 'ready' then return 0 end

local o = redis.call('HMGET', KEYS[1], 'st', 'seq', 'b', 'q', 's', 'i', 'imps', 'imp')
if o[1] ~= 'held' or o[2] ~= seq then return 0 end
if leaveHold(KEYS[1], o[7], o[8], ARGV[2]) then return 0 end
endHold(KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[1], ARGV[1], o[5], o[6], o[3], o[4], 'pending')
-- The hold this request took is not there to check any more (see placeHold: unchecked): the buyer's
-- retry after the refusal may take one.
redis.call('HDEL', KEYS[1], 'uh')
return 1
