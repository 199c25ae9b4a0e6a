--[[
  Gives back the count claimOrder took for an order that was not made after all (refused, a fault
  before or after its insert, or the claim's answer lost). Only a claim still held is given back, and
  only once: giving back a claim that never ran, or was settled, changes nothing. Never below zero.

  Input:
    KEYS[1] orders    {ev:E}:border
    KEYS[2] claims    {ev:E}:bclaim
    ARGV[1] merchant_uid

  Output:
     1  given back
     0  no such claim (nothing changed)
]]
local claim = redis.call('HGET', KEYS[2], ARGV[1])
if not claim then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
local buyer = string.match(claim, '^(.*)|%d+$')
local n = tonumber(redis.call('HGET', KEYS[1], buyer) or '0')
if n <= 1 then redis.call('HDEL', KEYS[1], buyer) else redis.call('HINCRBY', KEYS[1], buyer, -1) end
return 1
