--[[
  Makes a new order visible to placeHold. Written after the order is in Postgres; never overwrites
  (a rebuild may have loaded the order already). Counts the buyer's orders of the event and refuses
  one past the most one buyer may make (ARGV[6]; 0: no limit).

  Input:
    KEYS[1] meta      {ev:E}:meta
    KEYS[2] order     {ev:E}:o:<uid>
    KEYS[3] orders    {ev:E}:border   hash: buyer id -> orders made (rebuilt from the record)
    ARGV[1] amount
    ARGV[2] buyer id
    ARGV[3] seats csv
    ARGV[4] items csv (pool,qty,...)
    ARGV[5] ticket count
    ARGV[6] most orders per buyer (0: no limit)

  Output:
     1  created
     0  existed already
    -9  event not loaded / being rebuilt
   -20  the buyer made as many orders as one buyer may
]]
if redis.call('HGET', KEYS[1], 'state') ~= 'ready' then return -9 end
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local most = tonumber(ARGV[6])
if most > 0 and tonumber(redis.call('HGET', KEYS[3], ARGV[2]) or '0') >= most then return -20 end
redis.call('HSET', KEYS[2], 'a', ARGV[1], 'b', ARGV[2], 's', ARGV[3], 'i', ARGV[4], 'q', ARGV[5], 'st', 'pending', 'seq', 0)
redis.call('HINCRBY', KEYS[3], ARGV[2], 1)
return 1
