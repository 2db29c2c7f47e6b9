#!lua
-- ack.lua: completes an in-flight run: gives back its slots, removes it
-- from the queue, appends a C entry to the outbox and marks the run
-- finishing until PostgreSQL has it.
--
-- KEYS[1]  T:inflight
-- KEYS[2]  T:leases
-- ARGV[1]  tag
-- ARGV[2]  R
-- ARGV[3]  E (a run of another environment reads as not in flight)
-- ARGV[4]  fence: the attempt the worker was given ("" = no fence)
-- ARGV[5]  now ms (a lease past its deadline is lapsed: applied here first)
-- ARGV[6]  max attempts (for that lapse)
--
-- Returns {1, entry id} acked; {2, attempt, entry id} already completed and
-- still finishing (a retry: the caller waits for that entry like the first
-- call did); {0} not in flight (nothing changed); {-1, attempt} the fence
-- does not match the current attempt (nothing changed).
local tag, R, E, fence = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local now, maxAttempts = tonumber(ARGV[5]), tonumber(ARGV[6])
local attempt, _, L = inflight_checked(tag, R, E, now, maxAttempts)
if not attempt then
  local fin = redis.call('HGET', tag .. ':fin', R)
  if fin then
    local p = split(fin, SEP)
    if p[1] == 'C' then return { 2, tonumber(p[2]), p[3] } end
  end
  return { 0 }
end
if fence ~= '' and tonumber(fence) ~= attempt then return { -1, attempt } end
inflight_drop(tag, R)
release_slots(tag, L, R)
forget_run(tag, L, R)
local id = outbox(tag, 'C', R, attempt, now)
mark_finishing(tag, R, 'C', attempt, id)
return { 1, id }
