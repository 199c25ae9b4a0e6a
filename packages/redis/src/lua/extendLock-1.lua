--[[
  Extends a lock while it is still ours, so a holder that is alive keeps it and one that died loses it
  within one lease.

  Input:
    KEYS[1] lock      any lock key (see releaseLock)
    ARGV[1] token     the value we set when we took it
    ARGV[2] lease (ms) from now

  Output:
     1  extended
     0  not ours any more
]]
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
