--[[
  An admitted buyer ordered: their admission no longer counts against max_active and the
  remaining-places bound (the order holds or will hold the places itself), and the waiting room's
  ordered counter (the dynamic pace's throughput) grows. The admission token stays valid until it
  expires (the buyer may order again within the buyer limit).

  Input:
    KEYS[1] queue     {ev:E}:q         hash: ordered
    KEYS[2] active    {ev:E}:q:act     zset: admitted, not yet ordered buyer -> admission expiry (ms)
    ARGV[1] buyer id

  Output:
     1  the buyer's admission was active and is now used
     0  it was used or had expired already
]]
if redis.call('ZREM', KEYS[2], ARGV[1]) == 0 then return 0 end
redis.call('HINCRBY', KEYS[1], 'ordered', 1)
return 1
