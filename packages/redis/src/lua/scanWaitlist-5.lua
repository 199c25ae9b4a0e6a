--[[
  One look along an event's waiting list, for one advance step (the API's waitlist service runs it
  under the list's lock): which waiting entries could be offered now, and which never can be.

  A step looks at the first ARGV[1] waiting entries in arrival order (the front of the line), then at
  up to ARGV[2] more after a cursor that moves through the rest of the line step by step and goes back
  to the front once it reaches the end. What a look costs grows with the places an entry wants (up to
  a hundred seats), so a step also stops at about ARGV[4] wanted places: the front gets at most half of
  them, the stretch after the cursor the rest (each at least one entry). A step's cost is bounded, and
  no number of entries that cannot be served stops the ones behind them from being looked at: the
  cursor passes ARGV[2] entries, or ARGV[4] / 2 wanted places, a step, whatever waits ahead.

  Each entry looked at is one of:
  - sold out: a seat it wants is sold, or a pool it wants has fewer places left unsold than it asks
    for. A held place can come back (its hold ends), a sold one does not: the entry leaves the line
    and keeps only its state, 'sold_out' (what it asked for is dropped).
  - servable now: every seat it wants is free and every pool it wants has room for its quantity,
    beside what the entries picked before it in this step take. Picked, at most ARGV[3], in the order
    looked at (the front first, in arrival order); the caller makes each an order, and reserveOrder
    decides for good.
  - neither: it keeps its place.

  Input:
    KEYS[1] meta      {ev:E}:meta    hash: state, ...
    KEYS[2] waitlist  {ev:E}:wl      zset: waiting buyer -> arrival number
    KEYS[3] entries   {ev:E}:wl:e    hash: buyer -> JSON entry; '#seq' arrivals so far; '#cur' the
                                     cursor (an arrival number; 0 or absent: right after the front)
    KEYS[4] seats     {ev:E}:seat    hash: seat -> '' free | 'h:<uid>' held | 's:<uid>' sold
    KEYS[5] counts    {ev:E}:cnt     hash: p:<pool>:cap|held|sold
    ARGV[1] front: entries looked at from the front of the line
    ARGV[2] window: entries looked at after the cursor
    ARGV[3] most entries picked
    ARGV[4] most wanted places looked at (seats and pool items, an entry's whole request at a time)

  Output: { code, entries told sold out now, buyer, entry JSON, buyer, entry JSON, ... (the picked) }
     1  looked
    -1  event not loaded in Redis (nothing looked at)
    -9  event being rebuilt (nothing looked at)
]]
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return { -1, 0 } end
if state ~= 'ready' then return { -9, 0 } end

local front, window, most, budget = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local SOLD_OUT = '{"s":[],"i":[],"st":"sold_out"}'

local taken = {}   -- seat -> true: picked in this step
local room = {}    -- pool -> places free now, less what this step picked
local unsold = {}  -- pool -> capacity less sold
local out = { 1, 0 }
local picked = 0
local spent = 0    -- wanted places looked at in this step

local function readPool(p)
  if room[p] ~= nil then return end
  local c = redis.call('HMGET', KEYS[5], 'p:' .. p .. ':cap', 'p:' .. p .. ':held', 'p:' .. p .. ':sold')
  local cap = tonumber(c[1])
  if cap == nil then
    -- Not a pool of the loaded event: nothing to decide on (neither servable nor sold out).
    room[p], unsold[p] = -1, -1
  else
    local sold = tonumber(c[3]) or 0
    room[p] = cap - (tonumber(c[2]) or 0) - sold
    unsold[p] = cap - sold
  end
end

local function look(buyer)
  local raw = redis.call('HGET', KEYS[3], buyer)
  spent = spent + 1
  if not raw then return end
  local e = cjson.decode(raw)
  local seats, items = e.s or {}, e.i or {}
  spent = spent + #seats + #items - 1
  local soldOut, fits = false, true
  if #seats > 0 then
    local values = redis.call('HMGET', KEYS[4], unpack(seats))
    for n = 1, #seats do
      local v = values[n]
      if v and string.sub(v, 1, 2) == 's:' then soldOut = true
      elseif v ~= '' or taken[seats[n]] then fits = false end
    end
  end
  for n = 1, #items do
    local p, q = items[n].pool, tonumber(items[n].quantity)
    readPool(p)
    if unsold[p] >= 0 and unsold[p] < q then soldOut = true
    elseif room[p] < q then fits = false end
  end
  if soldOut then
    redis.call('ZREM', KEYS[2], buyer)
    redis.call('HSET', KEYS[3], buyer, SOLD_OUT)
    out[2] = out[2] + 1
  elseif fits and picked < most then
    for n = 1, #seats do taken[seats[n]] = true end
    for n = 1, #items do room[items[n].pool] = room[items[n].pool] - tonumber(items[n].quantity) end
    picked = picked + 1
    out[#out + 1] = buyer
    out[#out + 1] = raw
  end
end

-- Looks at the entries of `flat` (member, score, ...) in order until `limit` wanted places are spent
-- (at least one entry). Returns the score of the last one looked at, and whether it looked at all.
local function lookAlong(flat, limit)
  local last = nil
  for n = 1, #flat, 2 do
    if last and spent >= limit then return last, false end
    look(flat[n])
    last = flat[n + 1]
  end
  return last, true
end

-- The front of the line, in arrival order.
local first = redis.call('ZRANGE', KEYS[2], 0, front - 1, 'WITHSCORES')
local last, all = lookAlong(first, budget / 2)
if all and #first / 2 < front then
  -- The whole line is its front: nothing behind it to move through.
  redis.call('HDEL', KEYS[3], '#cur')
  return out
end

-- Then the next stretch behind what the front looked at, after the cursor.
local from = math.max(tonumber(redis.call('HGET', KEYS[3], '#cur') or '0'), tonumber(last) or 0)
local rest = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. from, '+inf', 'WITHSCORES', 'LIMIT', 0, window)
-- Its share: what the front left of the budget, and at least half of it.
local share = budget - math.min(budget / 2, spent)
spent = 0
local upTo
upTo, all = lookAlong(rest, share)
if all and #rest / 2 < window then
  redis.call('HDEL', KEYS[3], '#cur')
else
  redis.call('HSET', KEYS[3], '#cur', upTo)
end
return out
