--[[
  One page of an event's seats in one status, in seat id (byte) order, after a cursor: a ZRANGEBYLEX
  on the status index that moveLines keeps beside the seat hash, so a page costs O(log n + page)
  however large the venue. Read-only.

  Input:
    KEYS[1] meta      {ev:E}:meta              hash: state, ..., seat_index ('1': the indexes are whole)
    KEYS[2] index     {ev:E}:seat:<status>     zset, every score 0: the seat ids in that status
    ARGV[1] cursor: the last seat id of the previous page ('' = from the first seat)
    ARGV[2] most ids to return

  Output: { code, id, id, ... }
     1  the ids follow (none when the status has no seat after the cursor)
    -1  event not loaded in Redis
    -9  event being rebuilt
   -15  the event's state was loaded before the indexes existed: the caller pages another way
]]
local meta = redis.call('HMGET', KEYS[1], 'state', 'seat_index')
if not meta[1] then return { -1 } end
if meta[1] ~= 'ready' then return { -9 } end
if meta[2] ~= '1' then return { -15 } end
local from = '-'
if ARGV[1] ~= '' then from = '(' .. ARGV[1] end
local ids = redis.call('ZRANGEBYLEX', KEYS[2], from, '+', 'LIMIT', 0, tonumber(ARGV[2]))
table.insert(ids, 1, 1)
return ids
