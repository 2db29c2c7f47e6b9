#!lua
-- release.lua: runs that were claimed but never delivered (the connection
-- closed, the long poll was cancelled) go back to their queue, due at once,
-- with the attempt they had: not a failure.
--
-- KEYS[1]  T:inflight
-- KEYS[2]  T:leases
-- ARGV[1]  tag
-- ARGV[2]  now ms
-- ARGV[3]  max attempts
-- ARGV[4..] run ids
--
-- Returns the number of runs released.
local tag, now, maxAttempts = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local released = 0
for i = 4, #ARGV do
  local R = ARGV[i]
  local attempt, _, L, ts = inflight_get(tag, R)
  if attempt then
    inflight_drop(tag, R)
    release_slots(tag, L, R)
    fail_run(tag, L, R, attempt, ts, true, now, now, maxAttempts)
    released = released + 1
  end
end
return released
