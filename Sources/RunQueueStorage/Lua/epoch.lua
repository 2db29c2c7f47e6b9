#!lua
-- epoch.lua: reads or sets a shard's epoch (see claim.lua). Setting it is the
-- last step of a rebuild from PostgreSQL.
--
-- KEYS[1]  T:epoch
-- ARGV[1]  "get" or "set"
-- ARGV[2]  the epoch (for set)
if ARGV[1] == 'set' then
  redis.call('SET', KEYS[1], ARGV[2])
  return ARGV[2]
end
return redis.call('GET', KEYS[1])
