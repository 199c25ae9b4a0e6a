--[[
  Numbers the webhooks of an order's payments, so the API queues at most one waiting outcome job per
  payment (job id `...-<generation>`) and a new webhook after that job started, finished or failed
  gets a job of its own, unless the worker already acted on exactly the status it claims: nothing a
  caller sends can make a later genuine webhook with news a duplicate. At most ARGV[3] payments are
  numbered per order; webhooks naming more payments share one generation under '*' (the worker then
  asks PortOne for the order's payment), so a caller cannot make dropgate store or call more per order.

  Each generation is one PortOne lookup, and their starts are paced per payment (a GCRA): a burst of
  up to ARGV[7], then one every ARGV[8] / ARGV[7] ms. A webhook past the pace is never dropped: it gets
  a generation that starts when the pace allows (the API queues its job with that delay), and webhooks
  arriving before that start share it. So every webhook is followed by a lookup that starts after it
  arrived, at most one interval later (one window after PortOne last said it does not know the
  payment), and a flood of D ms costs at most ARGV[7] + 1 + D / interval lookups per payment.

  Input:
    KEYS[1] meta      {ev:E}:meta
    KEYS[2] order     {ev:E}:o:<uid>
    KEYS[3] webhooks  {ev:E}:o:<uid>:w   hash: imp_uid (or '*') ->
                      "<generation>|<pace: ms>|<start of the generation: ms>|<status acted on>"
    ARGV[1] mode: 'peek' (current generation) | 'next' (a new generation) | 'acted' (record ARGV[5])
    ARGV[2] imp_uid
    ARGV[3] most payments numbered per order
    ARGV[4] ttl of the numbering (s)
    ARGV[5] for 'acted': the payment status PortOne reported and the worker acted on; 'unknown' (PortOne
            does not know the payment) also puts its next lookup one window (ARGV[8]) later
    ARGV[6] now (ms)
    ARGV[7] lookups per payment in a burst
    ARGV[8] window (ms): the burst refills over it; the wait after an 'unknown'
    ARGV[9] for 'next': a generation whose job id was found taken ('' for none): never shared again

  Output: { code, generation, status acted on ('' if none; after 'next' only 'unknown' is kept),
            start of the generation (ms) }
     1  numbered under the imp_uid
     2  numbered under '*' (the order has seen too many payments)
     0  'acted' for a payment that is not numbered (nothing stored)
    -2  order not found
    -9  event not loaded / being rebuilt
]]
if redis.call('HGET', KEYS[1], 'state') ~= 'ready' then return { -9, 0, '', 0 } end
if redis.call('EXISTS', KEYS[2]) == 0 then return { -2, 0, '', 0 } end

local function parse(value)
  if not value then return 0, 0, 0, '' end
  local g, p, s, a = string.match(value, '^(%d+)|(%d+)|(%d+)|(.*)$')
  if g then return tonumber(g), tonumber(p), tonumber(s), a end
  -- Written before pacing: "<generation>|<status acted on>", read as never paced.
  g, a = string.match(value, '^(%d+)|(.*)$')
  return tonumber(g), 0, 0, a
end
local function store(field, gen, pace, start, acted)
  redis.call('HSET', KEYS[3], field, string.format('%d|%d|%d|%s', gen, pace, start, acted))
end

local now = tonumber(ARGV[6])
local burst = tonumber(ARGV[7])
local window = tonumber(ARGV[8])
local interval = math.max(1, math.floor(window / burst))
-- How far the pace may run ahead of now while lookups still start at once.
local tolerance = (burst - 1) * interval

local field = ARGV[2]
local current = redis.call('HGET', KEYS[3], field)
if ARGV[1] == 'acted' then
  if not current then return { 0, 0, '', 0 } end
  local gen, pace, start = parse(current)
  -- PortOne does not know it (made up, or not created yet): the next lookup waits a window. Not a
  -- duplicate verdict: a later webhook still gets that lookup, so a payment created since is found.
  if ARGV[5] == 'unknown' then pace = math.max(pace, now + tolerance + window) end
  store(field, gen, pace, start, ARGV[5])
  return { 1, gen, ARGV[5], start }
end
if not current and redis.call('HLEN', KEYS[3]) >= tonumber(ARGV[3]) then
  field = '*'
  current = redis.call('HGET', KEYS[3], field)
end
local code = field == '*' and 2 or 1
local gen, pace, start, acted = parse(current)
if ARGV[1] == 'peek' then return { code, gen, acted, start } end
-- A lookup that starts later is scheduled already: it answers this webhook too.
if gen > 0 and start > now and tostring(gen) ~= ARGV[9] then return { code, gen, acted, start } end
pace = math.max(pace, now)
start = math.max(now, pace - tolerance)
gen = gen + 1
-- What was acted on is forgotten (the new lookup will say), except 'unknown', kept to tell why a
-- lookup was put off; it never equals a claimed status, so it makes no webhook a duplicate.
if acted ~= 'unknown' then acted = '' end
store(field, gen, pace + interval, start, acted)
redis.call('EXPIRE', KEYS[3], tonumber(ARGV[4]))
return { code, gen, acted, start }
