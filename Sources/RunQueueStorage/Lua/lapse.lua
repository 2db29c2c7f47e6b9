#!lua
-- lapse.lua: applies the lapse of every lease whose deadline passed (up to a
-- budget): each is a failure, due again at once, or a dead letter.
--
-- KEYS[1]  T:leases
-- ARGV[1]  tag
-- ARGV[2]  now ms
-- ARGV[3]  max attempts
-- ARGV[4]  budget (leases per call)
--
-- Returns {lapses applied, next wake ms or -1}.
local tag, now = ARGV[1], tonumber(ARGV[2])
local n = lapse_due(tag, now, tonumber(ARGV[3]), tonumber(ARGV[4]))
return { n, next_wake(tag) }
