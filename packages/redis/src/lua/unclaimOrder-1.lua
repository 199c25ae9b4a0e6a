--[[
  Gives back an order claimOrder counted, when the order was not made after all (refused, or a fault
  before or after its insert). Never below zero (a rebuild in between recounted from the record).

  Input:
    KEYS[1] orders    {ev:E}:border
    ARGV[1] buyer id

  Output:
     1  given back (or nothing was counted)
]]
local n = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if n <= 1 then redis.call('HDEL', KEYS[1], ARGV[1]) else redis.call('HINCRBY', KEYS[1], ARGV[1], -1) end
return 1
