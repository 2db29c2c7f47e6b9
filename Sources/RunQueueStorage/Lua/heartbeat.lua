#!lua
-- heartbeat.lua: extends the lease of an in-flight run.
--
-- KEYS[1]  T:inflight
-- KEYS[2]  T:leases
-- ARGV[1]  tag
-- ARGV[2]  R
-- ARGV[3]  E
-- ARGV[4]  fence ("" = none)
-- ARGV[5]  now ms (a passed lease is lapsed, applied here: not in flight)
-- ARGV[6]  max attempts
-- ARGV[7]  new lease deadline ms
--
-- Returns {1, deadline}; {0} not in flight; {-1, attempt} fence mismatch.
local tag, R, E, fence = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local now, maxAttempts, deadline = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local attempt, _, L, ts = inflight_checked(tag, R, E, now, maxAttempts)
if not attempt then return { 0 } end
if fence ~= '' and tonumber(fence) ~= attempt then return { -1, attempt } end
redis.call('HSET', KEYS[1], R,
  string.format('%d', attempt) .. SEP .. string.format('%d', deadline) .. SEP .. L .. SEP .. string.format('%d', ts))
redis.call('ZADD', KEYS[2], deadline, R)
return { 1, deadline }
