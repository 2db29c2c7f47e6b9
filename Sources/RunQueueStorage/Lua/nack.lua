#!lua
-- nack.lua: a worker gives an in-flight run back: a failure (attempt + 1,
-- unless keep) that requeues it at retry_at or after a randomised backoff,
-- or dead-letters it when the attempt reaches max attempts.
--
-- KEYS[1]  T:inflight
-- KEYS[2]  T:leases
-- ARGV[1]  tag
-- ARGV[2]  R
-- ARGV[3]  E
-- ARGV[4]  fence ("" = none)
-- ARGV[5]  now ms
-- ARGV[6]  max attempts
-- ARGV[7]  retry_at ms (0 = backoff)
-- ARGV[8]  keep attempt (1/0)
-- ARGV[9]  backoff factor
-- ARGV[10] backoff min ms
-- ARGV[11] backoff max ms
-- ARGV[12] r in [1, 2): the backoff's random factor
--
-- Backoff: delay = min(max, r x min x factor^(attempt - 1)).
-- Returns {1, attempt, dead (0/1), outbox entry id}; {0} not in flight;
-- {-1, attempt} fence mismatch.
local tag, R, E, fence = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local now, maxAttempts = tonumber(ARGV[5]), tonumber(ARGV[6])
local retryAt, keep = tonumber(ARGV[7]), ARGV[8] == '1'
local factor, minMs, maxMs, r = tonumber(ARGV[9]), tonumber(ARGV[10]), tonumber(ARGV[11]), tonumber(ARGV[12])
local attempt, _, L, ts = inflight_checked(tag, R, E, now, maxAttempts)
if not attempt then return { 0 } end
if fence ~= '' and tonumber(fence) ~= attempt then return { -1, attempt } end
local due = retryAt
if due <= 0 then
  local next = attempt
  if not keep then next = attempt + 1 end
  if next < 1 then next = 1 end
  local delay = math.min(maxMs, r * minMs * (factor ^ (next - 1)))
  due = now + math.floor(delay)
end
inflight_drop(tag, R)
release_slots(tag, L, R)
local newAttempt, dead, id = fail_run(tag, L, R, attempt, ts, keep, due, now, maxAttempts)
flush_due(tag)
return { 1, newAttempt, dead, id }
