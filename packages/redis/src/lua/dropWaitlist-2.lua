--[[
  A waiting buyer who can never be served (over the buyer limit, say) leaves the line as expired, only
  while they still wait: a step that ran past the list's lock can find its entry offered by the step
  after it (its own order refused as over the buyer limit by that offer's), and that offer stays.

  Input:
    KEYS[1] waitlist  {ev:E}:wl        zset: waiting buyer -> arrival number
    KEYS[2] entries   {ev:E}:wl:e      hash: buyer -> JSON entry
    ARGV[1] buyer id
    ARGV[2] the entry as expired (JSON)

  Output:
     1  dropped
     0  not waiting (nothing written)
]]
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return 1
