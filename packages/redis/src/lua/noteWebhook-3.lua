--[[
  Numbers the webhooks of an order's payments, so the API queues at most one waiting outcome job per
  payment (job id `...-<generation>`) and a new webhook after that job started, finished or failed
  always gets a job of its own: nothing a caller sends can make a later genuine webhook a duplicate.
  At most ARGV[2] payments are numbered per order; webhooks naming more payments share one generation
  under '*' (the worker then asks PortOne for the order's payment instead), so a caller cannot make
  dropgate store or call more per order.

  Input:
    KEYS[1] meta      {ev:E}:meta
    KEYS[2] order     {ev:E}:o:<uid>
    KEYS[3] webhooks  {ev:E}:o:<uid>:w   hash: imp_uid (or '*') -> generation
    ARGV[1] imp_uid
    ARGV[2] most payments numbered per order
    ARGV[3] ttl of the numbering (s)
    ARGV[4] 'peek' (current generation) | 'next' (a new generation)

  Output: { code, generation }
     1  numbered under the imp_uid
     2  numbered under '*' (the order has seen too many payments)
    -2  order not found
    -9  event not loaded / being rebuilt
]]
if redis.call('HGET', KEYS[1], 'state') ~= 'ready' then return { -9, 0 } end
if redis.call('EXISTS', KEYS[2]) == 0 then return { -2, 0 } end
local field = ARGV[1]
if redis.call('HEXISTS', KEYS[3], field) == 0 and redis.call('HLEN', KEYS[3]) >= tonumber(ARGV[2]) then field = '*' end
local code = field == '*' and 2 or 1
if ARGV[4] == 'peek' then
  return { code, tonumber(redis.call('HGET', KEYS[3], field) or '0') }
end
local gen = redis.call('HINCRBY', KEYS[3], field, 1)
redis.call('EXPIRE', KEYS[3], tonumber(ARGV[3]))
return { code, gen }
