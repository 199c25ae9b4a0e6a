--[[
  Releases a lock only if it is still ours: a lock that expired and was taken by another process is
  left alone.

  Input:
    KEYS[1] lock      any lock key (the order's settle lock, the event's rebuild lock, the sweep lock)
    ARGV[1] token     the value we set when we took it

  Output:
     1  released
     0  not ours (expired, or taken by someone else)
]]
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
