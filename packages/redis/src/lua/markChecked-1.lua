--[[
  A worker has PortOne's word on a payment of the order (verified, settled, or listed by the expiry):
  an unsigned V1 confirm may take or renew a hold of the order again (see placeHold: unchecked).
  Nothing is written for an order that does not exist.

  Input:
    KEYS[1] order     {ev:E}:o:<uid>

  Output: 1 if the order was waiting for that word, else 0
]]
return redis.call('HDEL', KEYS[1], 'uh')
