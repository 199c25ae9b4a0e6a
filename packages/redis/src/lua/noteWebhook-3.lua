--[[
  Numbers the webhooks of an order's payments, so the API queues at most one waiting outcome job per
  payment (job id `...-<generation>`) and a new webhook after that job started, finished or failed
  gets a job of its own, unless the worker already acted on exactly the status it claims: nothing a
  caller sends can make a later genuine webhook with news a duplicate. At most ARGV[3] payments are
  numbered per order; webhooks naming more payments share one generation under '*' (the worker then
  asks PortOne for the order's payment), so a caller cannot make dropgate store or call more per order.

  Input:
    KEYS[1] meta      {ev:E}:meta
    KEYS[2] order     {ev:E}:o:<uid>
    KEYS[3] webhooks  {ev:E}:o:<uid>:w   hash: imp_uid (or '*') -> "<generation>|<status acted on>"
    ARGV[1] mode: 'peek' (current generation) | 'next' (a new generation) | 'acted' (record ARGV[5])
    ARGV[2] imp_uid
    ARGV[3] most payments numbered per order
    ARGV[4] ttl of the numbering (s)
    ARGV[5] for 'acted': the payment status PortOne reported and the worker acted on

  Output: { code, generation, status acted on ('' if none) }
     1  numbered under the imp_uid
     2  numbered under '*' (the order has seen too many payments)
     0  'acted' for a payment that is not numbered (nothing stored)
    -2  order not found
    -9  event not loaded / being rebuilt
]]
if redis.call('HGET', KEYS[1], 'state') ~= 'ready' then return { -9, 0, '' } end
if redis.call('EXISTS', KEYS[2]) == 0 then return { -2, 0, '' } end
local field = ARGV[2]
local current = redis.call('HGET', KEYS[3], field)
if ARGV[1] == 'acted' then
  if not current then return { 0, 0, '' } end
  local gen = string.match(current, '^(%d+)|')
  redis.call('HSET', KEYS[3], field, gen .. '|' .. ARGV[5])
  return { 1, tonumber(gen), ARGV[5] }
end
if not current and redis.call('HLEN', KEYS[3]) >= tonumber(ARGV[3]) then
  field = '*'
  current = redis.call('HGET', KEYS[3], field)
end
local code = field == '*' and 2 or 1
local gen, acted = 0, ''
if current then
  local g, a = string.match(current, '^(%d+)|(.*)$')
  gen, acted = tonumber(g), a
end
if ARGV[1] == 'peek' then return { code, gen, acted } end
gen = gen + 1
redis.call('HSET', KEYS[3], field, gen .. '|')
redis.call('EXPIRE', KEYS[3], tonumber(ARGV[4]))
return { code, gen, '' }
