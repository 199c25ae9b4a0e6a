--[[
  Decides a PortOne confirm in one round trip: holds every seat and pool quantity of the order, or
  nothing, and hands every new hold to the workers. Time comes from the caller (ARGV[3]); no wall
  clock is read here.

  Input:
    KEYS[1] meta      {ev:E}:meta    hash: state, opens, closes, ttl, max
    KEYS[2] order     {ev:E}:o:<uid> hash: a amount, b buyer, s seats, i items, q tickets, st, exp, seq,
                                     imp (the payment that took the hold), imps (every payment approved on it)
    KEYS[3] decision  {ev:E}:d:<imp> string "code|exp|seq": the answer already given to this imp_uid
    KEYS[4] seats     {ev:E}:seat    hash: seat id -> '' free | 'h:<uid>' held | 's:<uid>' sold
    KEYS[5] counts    {ev:E}:cnt     hash: seats_total/held/sold, p:<pool>:cap/held/sold
    KEYS[6] buyers    {ev:E}:buyer   hash: buyer id -> tickets held or bought
    KEYS[7] holds     {ev:E}:holds   zset: uid scored by hold expiry (ms)

    ARGV[1] merchant_uid
    ARGV[2] amount ('' when PortOne did not send one)
    ARGV[3] now (ms)
    ARGV[4] decision ttl (s)

  Output: { code, expires_at_ms, seq, replayed }
     1  approved: a new hold was taken
     2  approved on the order's live hold (the buyer retried the payment)
     3  approved: the order's lapsed hold was renewed (still unswept, so nobody else has its seats)
    -1  event not loaded in Redis
    -2  order not found
    -3  amount mismatch
    -4  sale not open
    -5  sale closed
    -6  buyer limit
    -7  sold out
    -8  already paid
    -9  event being rebuilt
   -10  refused for the deadline (remembered by undoHold)
]]
--- @include "includes/orderLines"

local cached = redis.call('GET', KEYS[3])
if cached then
  local code, exp, seq = string.match(cached, '^(-?%d+)|(%d*)|(%d*)$')
  return { tonumber(code), tonumber(exp) or 0, tonumber(seq) or 0, 1 }
end

local meta = redis.call('HMGET', KEYS[1], 'state', 'opens', 'closes', 'ttl', 'max')
if not meta[1] then return { -1, 0, 0, 0 } end
if meta[1] ~= 'ready' then return { -9, 0, 0, 0 } end

local now = tonumber(ARGV[3])
local imp = string.match(KEYS[3], ':d:(.*)$')
local ttl = tonumber(ARGV[4])

local function decide(code, exp, seq)
  redis.call('SET', KEYS[3], code .. '|' .. (exp or '') .. '|' .. (seq or ''), 'EX', ttl)
  return { code, exp or 0, seq or 0, 0 }
end

local o = redis.call('HMGET', KEYS[2], 'a', 'b', 's', 'i', 'q', 'st', 'exp', 'seq')
if not o[1] then return decide(-2) end
if ARGV[2] ~= '' and tonumber(ARGV[2]) ~= tonumber(o[1]) then return decide(-3) end

local st = o[6]
if st == 'paid' then return decide(-8) end

local holdMs = tonumber(meta[4])

if st == 'held' then
  local exp = tonumber(o[7])
  local seq = tonumber(o[8])
  if exp > now then
    -- Remember every payment riding on this hold: the expiry check asks PortOne about each.
    local imps = redis.call('HGET', KEYS[2], 'imps') or ''
    redis.call('HSET', KEYS[2], 'imps', imps .. ',' .. imp)
    return decide(2, exp, seq)
  end
  -- Lapsed but not yet swept: the seats are still this order's. Renew them under a new hold number.
  exp = now + holdMs
  seq = seq + 1
  local imps = redis.call('HGET', KEYS[2], 'imps') or ''
  redis.call('HSET', KEYS[2], 'exp', exp, 'seq', seq, 'imp', imp, 'imps', imps .. ',' .. imp)
  redis.call('ZADD', KEYS[7], exp, ARGV[1])
  redis.call('XADD', KEYS[8], '*', 'uid', ARGV[1], 'imp', imp, 'seq', seq, 'exp', exp, 'at', now)
  return decide(3, exp, seq)
end

if now < tonumber(meta[2]) then return decide(-4) end
if meta[3] and meta[3] ~= '' and now >= tonumber(meta[3]) then return decide(-5) end

local qty = tonumber(o[5])
local max = tonumber(meta[5]) or 0
if max > 0 then
  local mine = tonumber(redis.call('HGET', KEYS[6], o[2]) or '0')
  if mine + qty > max then return decide(-6) end
end

local seats = splitCsv(o[3])
local items = splitCsv(o[4])
for i = 1, #seats do
  if redis.call('HGET', KEYS[4], seats[i]) ~= '' then return decide(-7) end
end
for i = 1, #items, 2 do
  local p = redis.call('HMGET', KEYS[5], 'p:' .. items[i] .. ':cap', 'p:' .. items[i] .. ':held', 'p:' .. items[i] .. ':sold')
  if tonumber(p[2]) + tonumber(p[3]) + tonumber(items[i + 1]) > tonumber(p[1]) then return decide(-7) end
end

moveLines(KEYS[4], KEYS[5], seats, items, 'h:' .. ARGV[1], nil, 'held')
-- Counted even without a limit, so a limit and the buyer metrics stay right after a rebuild.
redis.call('HINCRBY', KEYS[6], o[2], qty)
local exp = now + holdMs
local seq = (tonumber(o[8]) or 0) + 1
redis.call('HSET', KEYS[2], 'st', 'held', 'exp', exp, 'seq', seq, 'imp', imp, 'imps', imp)
redis.call('ZADD', KEYS[7], exp, ARGV[1])
redis.call('XADD', KEYS[8], '*', 'uid', ARGV[1], 'imp', imp, 'seq', seq, 'exp', exp, 'at', now)
return decide(1, exp, seq)
