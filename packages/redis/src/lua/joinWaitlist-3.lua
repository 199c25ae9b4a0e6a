--[[
  POST /events/:id/waitlist: one entry per buyer, first come first served. A buyer on the list already
  keeps their entry (and its place; what they asked for first stands). The list keeps at most ARGV[3]
  entries (every buyer who joined, waiting or done: each is kept for its buyer to read the outcome);
  a new buyer beyond that is refused, so what anyone can make Redis store is bounded. The API records
  every entry in Postgres too (by its arrival number), and a rebuild puts the list back from there:
  while the event is not loaded (or is being rebuilt) nobody joins, so no arrival number is given
  twice.

  Input:
    KEYS[1] waitlist  {ev:E}:wl        zset: waiting buyer -> arrival number
    KEYS[2] entries   {ev:E}:wl:e      hash: buyer -> JSON entry; '#seq' -> arrivals so far
    KEYS[3] meta      {ev:E}:meta      hash: state ('ready' once loaded)
    ARGV[1] buyer id
    ARGV[2] entry (JSON: {"s": seats, "i": items, "st": "waiting"})
    ARGV[3] most entries the list keeps

  Output: { code, rank (0-based; -1 when no longer waiting), arrival number (-1: not waiting) }
     1  joined now
     0  on the list already
   -19  the list is full (nothing stored)
    -9  the event is not loaded in Redis, or is being rebuilt (nothing stored)
]]
if redis.call('HGET', KEYS[3], 'state') ~= 'ready' then return { -9, -1, -1 } end
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then
  local seq = redis.call('ZSCORE', KEYS[1], ARGV[1])
  return { 0, redis.call('ZRANK', KEYS[1], ARGV[1]) or -1, seq and tonumber(seq) or -1 }
end
if tonumber(redis.call('HGET', KEYS[2], '#seq') or '0') >= tonumber(ARGV[3]) then return { -19, -1, -1 } end
local seq = redis.call('HINCRBY', KEYS[2], '#seq', 1)
redis.call('ZADD', KEYS[1], seq, ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return { 1, redis.call('ZRANK', KEYS[1], ARGV[1]), seq }
