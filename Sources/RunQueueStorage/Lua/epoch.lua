#!lua
-- epoch.lua: reads or sets a shard's epoch (see claim.lua) and its sequence
-- (T:seq, advanced by every outbox entry: lib.lua). Setting them is the last
-- step of a rebuild from PostgreSQL.
--
-- KEYS[1]  T:epoch
-- KEYS[2]  T:seq
-- ARGV[1]  "get" or "set"
-- ARGV[2]  the epoch (for set)
-- ARGV[3]  the sequence PostgreSQL applied last (for set): the shard's
--          sequence is raised to it, never lowered
--
-- get returns {epoch or false, sequence (0 when absent)}; set returns the epoch.
if ARGV[1] == 'set' then
  redis.call('SET', KEYS[1], ARGV[2])
  local applied = tonumber(ARGV[3]) or 0
  if (tonumber(redis.call('GET', KEYS[2]) or '0') or 0) < applied then
    redis.call('SET', KEYS[2], string.format('%d', applied))
  end
  return ARGV[2]
end
return { redis.call('GET', KEYS[1]), tonumber(redis.call('GET', KEYS[2]) or '0') or 0 }
