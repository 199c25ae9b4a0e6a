--[[
  Makes a new order visible to placeHold. Written after the order is in Postgres; never overwrites
  (a rebuild may have loaded the order already).

  Input:
    KEYS[1] meta      {ev:E}:meta
    KEYS[2] order     {ev:E}:o:<uid>
    ARGV[1] amount
    ARGV[2] buyer id
    ARGV[3] seats csv
    ARGV[4] items csv (pool,qty,...)
    ARGV[5] ticket count
    ARGV[6] 'v2' for an order paid through PortOne V2 (stored as field api: placeHold takes no V1
            confirm for it), else ''
    ARGV[7] merchant_uid

  An order the worker withdrew as an orphan meanwhile (marked 'w:<uid>' in meta by withdrawOrphans:
  this step came too late) is refused: Postgres no longer has it.

  Output:
     1  created
     0  existed already
    -9  event not loaded / being rebuilt
   -21  withdrawn as an orphan (nothing written)
]]
if redis.call('HGET', KEYS[1], 'state') ~= 'ready' then return -9 end
if redis.call('HEXISTS', KEYS[1], 'w:' .. ARGV[7]) == 1 then return -21 end
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('HSET', KEYS[2], 'a', ARGV[1], 'b', ARGV[2], 's', ARGV[3], 'i', ARGV[4], 'q', ARGV[5], 'st', 'pending', 'seq', 0)
if ARGV[6] == 'v2' then redis.call('HSET', KEYS[2], 'api', 'v2') end
return 1
