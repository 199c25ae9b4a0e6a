--[[
  POST /events/:id/queue: gives a buyer one place in the event's waiting room, the same place when the
  buyer joins again. Buyers who join before the opening are ordered by a seeded hash of their id
  (sha1(seed ':' buyer), first 52 bits, as a fraction in [0,1)): a shuffle nobody can steer before the
  seed is published and anyone can check after; later arrivals queue in arrival order behind them
  (places 2, 3, ...). O(log n).

  Input:
    KEYS[1] queue     {ev:E}:q         hash: seq (arrivals after the opening)
    KEYS[2] waiting   {ev:E}:q:wait    zset: buyer -> place
    KEYS[3] admitted  {ev:E}:q:adm     hash: buyer -> admission expiry (ms)
    ARGV[1] buyer id
    ARGV[2] now (ms)
    ARGV[3] sale opens at (ms)
    ARGV[4] shuffle seed

  Output: { code, rank (0-based; -1 when admitted) }
     1  joined now
     0  had a place already (same place)
     2  admitted already
]]
if redis.call('HEXISTS', KEYS[3], ARGV[1]) == 1 then return { 2, -1 } end
if redis.call('ZSCORE', KEYS[2], ARGV[1]) then return { 0, redis.call('ZRANK', KEYS[2], ARGV[1]) } end
local score
if tonumber(ARGV[2]) < tonumber(ARGV[3]) then
  score = tonumber(string.sub(redis.sha1hex(ARGV[4] .. ':' .. ARGV[1]), 1, 13), 16) / 4503599627370496
else
  score = 1 + redis.call('HINCRBY', KEYS[1], 'seq', 1)
end
redis.call('ZADD', KEYS[2], score, ARGV[1])
return { 1, redis.call('ZRANK', KEYS[2], ARGV[1]) }
