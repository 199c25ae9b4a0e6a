-- The replication id of this server's history (INFO replication's master_replid): a primary keeps it;
-- a replica promoted by a failover, or a server restarted, starts a new one.
local function currentReplid()
  return string.match(redis.call('INFO', 'replication'), 'master_replid:(%w+)') or ''
end
