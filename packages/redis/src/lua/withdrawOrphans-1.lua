--[[
  The worker's orphan check (an order the API inserted in Postgres and never made visible here): of
  the given orders, those Redis does not have are marked withdrawn in the event's meta hash ('w:<uid>'),
  in the same step that finds them absent, so an API step that comes late (a process that stalled
  between its insert and its Redis step) is refused by createOrder and reserveOrder instead of making
  visible an order Postgres no longer has. The marks go with the meta hash when the event is loaded
  again.

  Input:
    KEYS[1] meta      {ev:E}:meta      hash: state ('ready' once loaded), w:<uid> withdrawn orders
    ARGV[1] the event's order key prefix ({ev:E}:o:)
    ARGV[2..] merchant_uids

  Output: the merchant_uids marked withdrawn (none while the event is not loaded)
]]
if redis.call('HGET', KEYS[1], 'state') ~= 'ready' then return {} end
local out = {}
for i = 2, #ARGV do
  if redis.call('EXISTS', ARGV[1] .. ARGV[i]) == 0 then
    redis.call('HSET', KEYS[1], 'w:' .. ARGV[i], 1)
    out[#out + 1] = ARGV[i]
  end
end
return out
