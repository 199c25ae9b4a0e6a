-- The replication id of this server's history (INFO replication's master_replid): a primary keeps it;
-- a replica promoted by a failover, or a server restarted, starts a new one.
local function currentReplid()
  return string.match(redis.call('INFO', 'replication'), 'master_replid:(%w+)') or ''
end

-- Whether an event's state (its meta hash, KEYS of the caller) is stamped by this server's history, so
-- known to be whole (see finishLoad). After a failover the promoted replica may lack holds and sales the
-- dead primary acknowledged: nothing may be taken on that state until the event is rebuilt from the
-- record. Costs one INFO (about a microsecond): scripts ask it only just before they take places.
local function stampedHere(meta)
  return redis.call('HGET', meta, 'replid') == currentReplid()
end
