--[[
  Is an event's state known to be whole on this primary? It is when it is loaded and stamped with this
  primary's current replication id (see finishLoad).

  Input:
    KEYS[1] meta      the event's meta hash

  Output:
     0  no state (missing)
     1  loaded and the stamp matches: whole
     2  loading (a rebuild is under way)
     3  loaded, but stamped by another replication history (a failover, or a server that came back with a new one):
        writes may be lost, rebuild it
]]
--- @include "includes/replid"
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return 0 end
if state ~= 'ready' then return 2 end
if redis.call('HGET', KEYS[1], 'replid') == currentReplid() then return 1 end
return 3
