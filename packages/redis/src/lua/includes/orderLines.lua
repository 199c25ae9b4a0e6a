--[[
  Shared pieces for scripts that touch an order's seats and pool items.
  An order hash stores seats as "s1,s2,..." and pool items as "pool,qty,pool,qty,...".
]]
local function splitCsv(s)
  local out = {}
  if s == nil or s == false or s == '' then return out end
  for part in string.gmatch(s, '([^,]+)') do out[#out + 1] = part end
  return out
end

-- The ordered index of seats in one status (nil = available): `<seatKey>:available|held|sold`, a
-- zset with every score 0, paged with ZRANGEBYLEX (seatPage). Named from the seats key rather than
-- passed in KEYS so every script that moves seats keeps its key list; it shares the seats key's hash
-- tag, so it lives in the same cluster slot.
local function seatIndexKey(seatKey, state)
  return seatKey .. ':' .. (state or 'available')
end

-- Moves every seat in `seats` to seat-hash value `to` ('' = free, 'h:<uid>' held, 's:<uid>' sold),
-- moves them between the status indexes, and moves their count from counter `fromCnt` to `toCnt`
-- ('held' | 'sold'; nil = available). Each pool item of `items` ("pool,qty,...") moves its quantity
-- from `p:<pool>:<fromCnt>` to `p:<pool>:<toCnt>` the same way.
local function moveLines(seatKey, cntKey, seats, items, to, fromCnt, toCnt)
  for i = 1, #seats do
    redis.call('HSET', seatKey, seats[i], to)
  end
  if #seats > 0 then
    if fromCnt then redis.call('HINCRBY', cntKey, 'seats_' .. fromCnt, -#seats) end
    if toCnt then redis.call('HINCRBY', cntKey, 'seats_' .. toCnt, #seats) end
    local members = {}
    for i = 1, #seats do
      members[#members + 1] = 0
      members[#members + 1] = seats[i]
    end
    redis.call('ZREM', seatIndexKey(seatKey, fromCnt), unpack(seats))
    redis.call('ZADD', seatIndexKey(seatKey, toCnt), unpack(members))
  end
  for i = 1, #items, 2 do
    local pool, qty = items[i], tonumber(items[i + 1])
    if fromCnt then redis.call('HINCRBY', cntKey, 'p:' .. pool .. ':' .. fromCnt, -qty) end
    if toCnt then redis.call('HINCRBY', cntKey, 'p:' .. pool .. ':' .. toCnt, qty) end
  end
end

-- Ends an order's live hold without a sale: its seats and pool items go back on sale, the buyer's
-- count drops by the order's quantity, the order takes status `status` with no expiry, and it leaves
-- the holds index. seatsCsv, itemsCsv, buyer and qty are the order's fields 's', 'i', 'b', 'q'.
local function endHold(seatKey, cntKey, buyersKey, holdsKey, orderKey, uid, seatsCsv, itemsCsv, buyer, qty, status)
  moveLines(seatKey, cntKey, splitCsv(seatsCsv), splitCsv(itemsCsv), '', 'held', nil)
  redis.call('HINCRBY', buyersKey, buyer, -tonumber(qty))
  redis.call('HSET', orderKey, 'st', status, 'exp', '')
  redis.call('HDEL', orderKey, 'rv')
  redis.call('ZREM', holdsKey, uid)
end

-- True when every seat of `seats` is free and every pool of `items` ("pool,qty,...") has room for its
-- quantity beside what is held and sold.
local function linesFree(seatKey, cntKey, seats, items)
  for i = 1, #seats do
    if redis.call('HGET', seatKey, seats[i]) ~= '' then return false end
  end
  for i = 1, #items, 2 do
    local p = redis.call('HMGET', cntKey, 'p:' .. items[i] .. ':cap', 'p:' .. items[i] .. ':held', 'p:' .. items[i] .. ':sold')
    if tonumber(p[2]) + tonumber(p[3]) + tonumber(items[i + 1]) > tonumber(p[1]) then return false end
  end
  return true
end

-- The payments of csv list `impsCsv` other than `imp`, in order.
local function otherPayments(impsCsv, imp)
  local kept = {}
  for _, other in ipairs(splitCsv(impsCsv)) do
    if other ~= imp then kept[#kept + 1] = other end
  end
  return kept
end

-- Another payment rides on the order's hold beside `imp` (placeHold code 2): takes `imp` off the hold
-- (its `imps`, and `imp` when it named it) and returns true, the hold staying theirs. False, changing
-- nothing, when `imp` is alone on it.
local function leaveHold(orderKey, impsCsv, currentImp, imp)
  local kept = otherPayments(impsCsv, imp)
  if #kept == 0 then return false end
  redis.call('HSET', orderKey, 'imps', table.concat(kept, ','))
  if currentImp == imp then redis.call('HSET', orderKey, 'imp', kept[1]) end
  return true
end

-- Whether `qty` more tickets put `buyer` past the event's `max` tickets per buyer (0: no limit), counting
-- what the buyer holds or bought already (hash `buyersKey`).
local function pastBuyerLimit(buyersKey, buyer, qty, max)
  return max > 0 and tonumber(redis.call('HGET', buyersKey, buyer) or '0') + qty > max
end

-- A reservation's hold (hold_at "order") whose payment came to nothing goes back to being the buyer's
-- reservation with its own expiry `rv` (the confirm had pushed it out to cover the PG's approval); the
-- caller has taken the payment off it.
local function backToReservation(orderKey, holdsKey, uid, rv)
  redis.call('HSET', orderKey, 'exp', rv)
  redis.call('HDEL', orderKey, 'rv')
  redis.call('ZADD', holdsKey, rv, uid)
end
