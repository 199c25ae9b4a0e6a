--[[
  Marks an event's state as whole (the last step of loading it) and stamps it with the replication id
  of the primary it was written on, in one step. A failover promotes a replica, which starts a new
  replication id: writes the old primary acknowledged but had not replicated may be gone, and the
  stamp no longer matching tells the guard so (see checkStamp).

  Input:
    KEYS[1] meta      the event's meta hash
    ARGV    field, value, ...   the meta fields (state 'ready', window, ttl, limits, epoch, ...)

  Output: the replication id stamped.
]]
--- @include "includes/replid"
redis.call('HSET', KEYS[1], unpack(ARGV))
local id = currentReplid()
redis.call('HSET', KEYS[1], 'replid', id)
return id
