--[[
  Counts one more order of a signed buyer for the event (ORDERS_PER_BUYER_MAX), or refuses it, before
  the order is written anywhere: a refused order stores nothing, however many arrive at once. The
  claim is kept under the order's merchant_uid until the order is made (settleClaim) or given back
  (unclaimOrder), so a rebuild of the event counts an order still on its way (see loadEvent), and a
  claim given back is given back once.

  Input:
    KEYS[1] meta      {ev:E}:meta
    KEYS[2] orders    {ev:E}:border   hash: buyer id -> orders counted (rebuilt from the record's
                                      orders whose buyer was verified, plus the claims in flight)
    KEYS[3] claims    {ev:E}:bclaim   hash: merchant_uid -> "<buyer id>|<claimed at, ms>"
    ARGV[1] buyer id
    ARGV[2] most orders per buyer (0: no limit, only counted)
    ARGV[3] merchant_uid of the order to be made
    ARGV[4] now (ms)

  Output:
     1  counted
    -9  event not loaded / being rebuilt (nothing counted)
   -20  the buyer made as many orders as one buyer may (nothing counted)
]]
if redis.call('HGET', KEYS[1], 'state') ~= 'ready' then return -9 end
local most = tonumber(ARGV[2])
if most > 0 and tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0') >= most then return -20 end
redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
redis.call('HSET', KEYS[3], ARGV[3], ARGV[1] .. '|' .. ARGV[4])
return 1
