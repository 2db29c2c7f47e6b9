#!lua
-- redrive.lua: puts a dead-lettered run back in its queue with attempt 0,
-- due now, and no TTL. The run comes back in the V4 layout (its side value
-- and lane record), whatever format it was written in.
--
-- KEYS[1]  T:dead
-- ARGV[1]  tag
-- ARGV[2]  R
-- ARGV[3]  E (a run of another environment reads as not found)
-- ARGV[4]  now ms
--
-- Returns {1} requeued, {0} not dead-lettered here.
local tag, R, E, now = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local v = redis.call('HGET', KEYS[1], R)
if not v then return { 0 } end
local p = split(v, US)
local L, record, side = p[1], p[2], p[3]
if lane_parts(L) ~= E then return { 0 } end
redis.call('HDEL', KEYS[1], R)
redis.call('DEL', tag .. ':msg:' .. R)
local _, ts, prio, task = side_parse(side)
ts = ts or now
lane_ref(tag, L, record)
local fresh = side_build(0, ts, prio, task)
if fresh ~= '' then redis.call('HSET', k_lane(tag, L, 'x'), R, fresh) end
queue_run(tag, L, R, now, ts - prio, now)
return { 1 }
