--[[
  GET /events/:id/queue/:token: advances the waiting room (at most once per ARGV[11] ms, whoever
  polls: any number of API processes share it, and no timer is needed), then tells the buyer where
  they stand. Admissions are inventory-aware:
  - paused while nothing is available (every place held or sold); they resume when holds end;
  - sold out (nothing available and nothing held): every waiting buyer is told so on their next poll;
  - at most ARGV[8] admitted-and-not-yet-ordered buyers per available place, at most ARGV[6] of them
    at once, at the pace ARGV[5] (fixed) or a pace that follows the confirm latency against the budget
    and the admitted buyers' ordering (dynamic: halves when the latency passes 80 % of the budget or
    admitted buyers stop ordering, grows by a tenth of ARGV[5] per second up to ARGV[5] while the
    latency stays under half the budget).
  Polls faster than ARGV[9] ms apart by one buyer are refused and change nothing.
  A room Redis lost comes back with its buyers: a buyer who is neither waiting nor admitted but whose
  token carries a place (ARGV[12]: 's' for the seeded shuffle of ARGV[13], or an arrival) is put back
  in it. That happens only when the room's keys were lost (nothing else takes a buyer out of both), so
  the first such return also holds admissions back for ARGV[14] ms ('back' in the queue hash): the
  buyers at the front come back before anyone behind them is admitted. A buyer whose place is at or
  before the room's front (the last admitted place, recorded by the worker and put back by the
  rebuild) was admitted before the loss: admitted again at once, outside max_active, until their
  admission would have ended at the latest (or told it expired). An event that is not loaded (or
  is being rebuilt) answers -9 and changes nothing: its counts are not there to be told as sold out.
  An admission's TTL (ARGV[7]) starts when its buyer first learns of it (their first poll after it):
  until then it is pending ('n<deadline>' in the admitted hash), and a buyer who does not come back
  within one TTL loses it, freeing the slot for the next buyer.

  Input:
    KEYS[1] queue     {ev:E}:q         hash: last, credit, rate, admitted, ordered, lat, radj, front
                                       (the place of the last buyer admitted), back, ...
    KEYS[2] waiting   {ev:E}:q:wait    zset: buyer -> place
    KEYS[3] active    {ev:E}:q:act     zset: admitted, not yet ordered buyer -> admission expiry (ms)
    KEYS[4] admitted  {ev:E}:q:adm     hash: buyer -> admission expiry (ms), or 'n<ms>': not yet
                                       learned by the buyer, lapses then
    KEYS[5] counts    {ev:E}:cnt       hash: seats_total/held/sold, p:<pool>:cap/held/sold
    KEYS[6] polls     {ev:E}:q:poll    hash: buyer -> last poll (ms)
    KEYS[7] meta      {ev:E}:meta      hash: state ('ready' once loaded)
    KEYS[8] fronts    {ev:E}:q:front   zset: the front as recorded (place) -> when (epoch ms), put back
                                       by a rebuild (read only when a lost buyer comes back)
    ARGV[1] buyer id
    ARGV[2] now (ms)
    ARGV[3] sale opens at (ms)
    ARGV[4] mode ('fixed' | 'dynamic')
    ARGV[5] admit_per_second
    ARGV[6] max_active
    ARGV[7] admission ttl (ms)
    ARGV[8] admitted buyers per available place
    ARGV[9] poll interval (ms)
    ARGV[10] confirm budget (ms)
    ARGV[11] admission step (ms)
    ARGV[12] the place the buyer's token carries ('' none, 's' shuffled, else an arrival)
    ARGV[13] shuffle seed
    ARGV[14] how long admissions wait for the others after a lost room's first buyer is back (ms)

  Output: { code, rank or admission expiry, waiting count, pace (per s, x1000), available, held }
     1  waiting (rank: 0-based place)
     2  admitted (admission expiry ms)
     3  sold out
     4  admission expired
     5  waiting, admissions paused (nothing available now)
    -2  not in the queue
    -9  the event is not loaded in Redis (or is being rebuilt)
   -18  polled too fast (nothing changed)
]]
--- @include "includes/shuffle"
local buyer = ARGV[1]
local now = tonumber(ARGV[2])

local lastPoll = tonumber(redis.call('HGET', KEYS[6], buyer) or '0')
if lastPoll > 0 and now - lastPoll < tonumber(ARGV[9]) then return { -18, 0, 0, 0, 0, 0 } end
if redis.call('HGET', KEYS[7], 'state') ~= 'ready' then return { -9, 0, 0, 0, 0, 0 } end

-- Back in the place the token carries, when the room no longer knows the buyer at all. A buyer at or
-- before the front (the place of the last buyer admitted, which the worker records in Postgres with
-- when, and a rebuild puts back) was admitted before the loss, by the time of the first record at or
-- past their place: their admission, learned at the latest one TTL after it and lasting one TTL from
-- then, ends by that time plus two TTLs. They are admitted again until then (at most one TTL from now),
-- or told their admission expired if that is past; outside the active set either way (the slot they
-- took was lost with the room), rather than queueing for a second admission that would take a slot of
-- max_active again.
if ARGV[12] ~= '' and redis.call('HEXISTS', KEYS[4], buyer) == 0 and not redis.call('ZSCORE', KEYS[2], buyer) then
  local place = ARGV[12] == 's' and shufflePlace(ARGV[13], buyer) or tonumber(ARGV[12])
  local front = tonumber(redis.call('HGET', KEYS[1], 'front') or '')
  if front and place <= front then
    local ttl = tonumber(ARGV[7])
    local mark = redis.call('ZRANGEBYSCORE', KEYS[8], place, '+inf', 'LIMIT', 0, 1)
    local by = tonumber(mark[1] or '') or now
    redis.call('HSET', KEYS[4], buyer, math.min(now + ttl, by + 2 * ttl))
  else
    redis.call('ZADD', KEYS[2], ARGV[12] == 's' and place or ARGV[12], buyer)
    redis.call('HSETNX', KEYS[1], 'back', now + tonumber(ARGV[14]))
  end
end

-- Inventory, in places (seats + pool places).
local counts = redis.call('HGETALL', KEYS[5])
local c = {}
for i = 1, #counts, 2 do c[counts[i]] = tonumber(counts[i + 1]) end
local available = (c['seats_total'] or 0) - (c['seats_held'] or 0) - (c['seats_sold'] or 0)
local held = c['seats_held'] or 0
for field, cap in pairs(c) do
  local pool = string.match(field, '^p:(.+):cap$')
  if pool then
    available = available + cap - (c['p:' .. pool .. ':held'] or 0) - (c['p:' .. pool .. ':sold'] or 0)
    held = held + (c['p:' .. pool .. ':held'] or 0)
  end
end
local soldOut = available <= 0 and held <= 0

local q = redis.call('HMGET', KEYS[1], 'last', 'credit', 'rate', 'lat', 'radj', 'admitted', 'ordered', 'admitted_at_adj', 'ordered_at_adj', 'back', 'front')
local aps = tonumber(ARGV[5])
local rate = tonumber(q[3]) or aps
local last = tonumber(q[1]) or 0

if now >= tonumber(ARGV[3]) and now - last >= tonumber(ARGV[11]) and not soldOut and now >= (tonumber(q[10]) or 0) then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
  local admittedTotal = tonumber(q[6]) or 0
  if ARGV[4] == 'dynamic' then
    local radj = tonumber(q[5]) or 0
    if now - radj >= 1000 then
      local budget = tonumber(ARGV[10])
      local lat = tonumber(q[4]) or 0
      local newlyAdmitted = admittedTotal - (tonumber(q[8]) or 0)
      local newlyOrdered = (tonumber(q[7]) or 0) - (tonumber(q[9]) or 0)
      if lat > 0.8 * budget or (newlyAdmitted >= 10 and newlyOrdered * 4 < newlyAdmitted) then
        rate = math.max(1, rate / 2)
      elseif lat < 0.5 * budget then
        rate = math.min(aps, rate + math.max(1, aps / 10))
      end
      redis.call('HSET', KEYS[1], 'rate', rate, 'radj', now, 'admitted_at_adj', admittedTotal, 'ordered_at_adj', tonumber(q[7]) or 0)
    end
  else
    rate = aps
  end
  local credit = tonumber(q[2]) or 0
  if last == 0 then last = now - 1000 end
  credit = math.min(math.max(rate, 1), credit + (now - last) / 1000 * rate)
  local active = redis.call('ZCARD', KEYS[3])
  local slots = math.min(
    tonumber(ARGV[6]) - active,
    math.floor(available * tonumber(ARGV[8])) - active,
    math.floor(credit))
  if slots > 0 then
    local popped = redis.call('ZPOPMIN', KEYS[2], slots)
    local exp = now + tonumber(ARGV[7])
    local n = 0
    for i = 1, #popped, 2 do
      redis.call('ZADD', KEYS[3], exp, popped[i])
      redis.call('HSET', KEYS[4], popped[i], 'n' .. exp)
      n = n + 1
    end
    credit = credit - n
    if n > 0 then
      redis.call('HINCRBY', KEYS[1], 'admitted', n)
      -- The front: admissions go in place order (ZPOPMIN), so every buyer at or before it was admitted.
      if tonumber(popped[#popped]) > (tonumber(q[11]) or -1) then redis.call('HSET', KEYS[1], 'front', popped[#popped]) end
    end
  end
  redis.call('HSET', KEYS[1], 'last', now, 'credit', credit)
end

redis.call('HSET', KEYS[6], buyer, now)
local waiting = redis.call('ZCARD', KEYS[2])
local pace = math.floor(rate * 1000)
local adm = redis.call('HGET', KEYS[4], buyer)
if adm then
  if string.sub(adm, 1, 1) == 'n' then
    -- The buyer learns of their admission now: its TTL starts now (if they came back in time).
    if tonumber(string.sub(adm, 2)) <= now then return { 4, tonumber(string.sub(adm, 2)), waiting, pace, available, held } end
    local exp = now + tonumber(ARGV[7])
    redis.call('HSET', KEYS[4], buyer, exp)
    redis.call('ZADD', KEYS[3], 'XX', exp, buyer)
    return { 2, exp, waiting, pace, available, held }
  end
  if tonumber(adm) > now then return { 2, tonumber(adm), waiting, pace, available, held } end
  return { 4, tonumber(adm), waiting, pace, available, held }
end
local rank = redis.call('ZRANK', KEYS[2], buyer)
if not rank then return { -2, 0, waiting, pace, available, held } end
if soldOut then return { 3, rank, waiting, pace, available, held } end
if available <= 0 then return { 5, rank, waiting, pace, available, held } end
return { 1, rank, waiting, pace, available, held }
