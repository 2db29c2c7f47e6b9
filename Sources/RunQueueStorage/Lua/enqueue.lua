#!lua
-- enqueue.lua: adds runs to their lanes, idempotent on run id.
--
-- KEYS[1]  T:due       (declares the shard's slot)
-- KEYS[2]  T:inflight
-- ARGV[1]  tag         "{rqN}"
-- ARGV[2]  now         ms
-- ARGV[3]  mode: "" (enqueue) or "redrive" (PostgreSQL already moved the run
--          back from DEAD_LETTERED: a finishing mark left by its dead letter is
--          stale and is cleared)
-- then 8 entries per run:
--   R, L, lane record (org SEP project SEP envType SEP task), order score
--   (timestamp - priority), due time (the timestamp; <= now means due),
--   V4 side value ("" = none), V2/V3 message ("" = V4), TTL deadline ("" = none)
--
-- Returns one integer per run: 1 added, 0 already present (queued in this
-- lane, in flight, or finishing in this shard): nothing changed. The row in
-- PostgreSQL was created before this script ran (creation first).
-- Announces due runs per worker queue and the earliest delayed run on the
-- wake channel (lib.lua), so long polls anywhere look at once.
local tag = ARGV[1]
local now = tonumber(ARGV[2])
local redrive = ARGV[3] == 'redrive'
local out = {}
local i = 4
while i <= #ARGV do
  local R, L, record = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local order, due = tonumber(ARGV[i + 3]), tonumber(ARGV[i + 4])
  local side, msg, ttl = ARGV[i + 5], ARGV[i + 6], ARGV[i + 7]
  i = i + 8
  if redrive then redis.call('HDEL', tag .. ':fin', R) end
  local present = redis.call('HEXISTS', KEYS[2], R) == 1
    or redis.call('ZSCORE', k_lane(tag, L, 'r'), R)
    or redis.call('ZSCORE', k_lane(tag, L, 'd'), R)
    or redis.call('HEXISTS', tag .. ':fin', R) == 1
    or redis.call('EXISTS', tag .. ':msg:' .. R) == 1
  if present then
    out[#out + 1] = 0
  else
    lane_ref(tag, L, record)
    -- The lane keeps the task identifier of the run that created it; a run
    -- with another one carries its own in its side value.
    if redis.call('HGET', k_lane(tag, L, 'm'), 'm') ~= record then
      local a, ts, prio = side_parse(side)
      side = side_build(a, ts, prio, split(record, SEP)[4])
    end
    if side ~= '' then redis.call('HSET', k_lane(tag, L, 'x'), R, side) end
    if msg ~= '' then redis.call('SET', tag .. ':msg:' .. R, msg) end
    if ttl ~= '' then
      redis.call('ZADD', k_lane(tag, L, 't'), ttl, R)
      redis.call('ZADD', tag .. ':ttlq', 'LT', ttl, L)
    end
    queue_run(tag, L, R, due, order, now)
    out[#out + 1] = 1
  end
end
flush_due(tag)
return out
