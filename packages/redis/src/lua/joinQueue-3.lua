--[[
  POST /events/:id/queue: gives a buyer one place in the event's waiting room, the same place when the
  buyer joins again. Buyers who join before the opening are ordered by a seeded hash of their id
  (sha1(seed ':' buyer), first 52 bits, as a fraction in [0,1)): a shuffle nobody can steer before the
  seed is published and anyone can check after. Later arrivals queue in arrival order behind them,
  placed by the time they came: 1024ths of a millisecond, each arrival at least one after the one
  before (the 'arr' field), so arrivals within one millisecond keep their order. A place is a time,
  not a count, so a room that Redis lost and that polls rebuild (pollQueue puts each buyer back at the
  place their token carries) orders the buyers who join afterwards behind the ones who come back.
  O(log n).

  Input:
    KEYS[1] queue     {ev:E}:q         hash: arr (the last arrival's place, 1024ths of a ms)
    KEYS[2] waiting   {ev:E}:q:wait    zset: buyer -> place
    KEYS[3] admitted  {ev:E}:q:adm     hash: buyer -> admission expiry (ms)
    ARGV[1] buyer id
    ARGV[2] now (ms)
    ARGV[3] sale opens at (ms)
    ARGV[4] shuffle seed

  Output: { code, rank (0-based; -1 when admitted), place ('s': shuffled; else the arrival, decimal) }
     1  joined now
     0  had a place already (same place)
     2  admitted already (an admission that ran out is dropped, and the buyer joins again as an arrival)
]]
--- @include "includes/shuffle"
local adm = redis.call('HGET', KEYS[3], ARGV[1])
if adm then
  -- Admitted, and the admission still good (learned: its expiry; not yet learned: 'n' and its deadline).
  local till = tonumber(string.sub(adm, 1, 1) == 'n' and string.sub(adm, 2) or adm)
  if not till or till > tonumber(ARGV[2]) then return { 2, -1, '' } end
  -- The admission ran out unused (the order refused told the buyer to join again): the buyer queues
  -- again, behind everyone waiting, as an arrival now.
  redis.call('HDEL', KEYS[3], ARGV[1])
end
local function placeOf(score)
  if score < 1 then return 's' end
  return string.format('%.0f', score)
end
local had = redis.call('ZSCORE', KEYS[2], ARGV[1])
if had then return { 0, redis.call('ZRANK', KEYS[2], ARGV[1]), placeOf(tonumber(had)) } end
local score
if not adm and tonumber(ARGV[2]) < tonumber(ARGV[3]) then
  score = shufflePlace(ARGV[4], ARGV[1])
else
  score = math.max(math.floor(tonumber(ARGV[2])) * 1024, (tonumber(redis.call('HGET', KEYS[1], 'arr')) or 0) + 1)
  redis.call('HSET', KEYS[1], 'arr', string.format('%.0f', score))
end
-- As text: a Lua number would reach Redis with fewer digits than an arrival has.
redis.call('ZADD', KEYS[2], score < 1 and score or string.format('%.0f', score), ARGV[1])
return { 1, redis.call('ZRANK', KEYS[2], ARGV[1]), placeOf(score) }
