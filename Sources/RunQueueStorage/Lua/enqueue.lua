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
--
-- Lane-level work is done once per lane touched, not once per run: the lane
-- record and its reference count, the bulk adds to the lane's sets, the
-- index refresh, one announcement per worker queue.
local tag = ARGV[1]
local now = tonumber(ARGV[2])
local redrive = ARGV[3] == 'redrive'
local finKey = tag .. ':fin'
local out = {}
local lanes = {}      -- L -> per-lane work gathered for the end
local laneOrder = {}
local count = (#ARGV - 3) / 8

-- Presence, read in bulk before anything changes (a handful of calls per
-- script instead of five per run): in flight or finishing in this shard
-- (two HMGETs), queued in its lane (ZMSCORE of the lane's ready and delayed
-- sets, once per lane), or holding a V2/V3 message key (one EXISTS of all;
-- only when some key exists is each run's key looked at).
local ids, msgKeys, byLane, laneList = {}, {}, {}, {}
for j = 1, count do
  local base = 4 + (j - 1) * 8
  local R, L = ARGV[base], ARGV[base + 1]
  ids[j] = R
  msgKeys[j] = tag .. ':msg:' .. R
  local list = byLane[L]
  if not list then list = {}; byLane[L] = list; laneList[#laneList + 1] = L end
  list[#list + 1] = R
end
if redrive and count > 0 then redis.call('HDEL', finKey, unpack(ids)) end
local present = {}    -- R -> true: already in this shard, nothing changes
local queuedIn = {}   -- L -> { R -> true }
if count > 0 then
  local inflight = redis.call('HMGET', KEYS[2], unpack(ids))
  local finishing = redis.call('HMGET', finKey, unpack(ids))
  local anyMsg = redis.call('EXISTS', unpack(msgKeys)) > 0
  for j = 1, count do
    if inflight[j] or finishing[j] or (anyMsg and redis.call('EXISTS', msgKeys[j]) == 1) then present[ids[j]] = true end
  end
  for _, L in ipairs(laneList) do
    local list = byLane[L]
    local ready = redis.call('ZMSCORE', k_lane(tag, L, 'r'), unpack(list))
    local delayed = redis.call('ZMSCORE', k_lane(tag, L, 'd'), unpack(list))
    local queued = {}
    for k, R in ipairs(list) do
      if ready[k] or delayed[k] then queued[R] = true end
    end
    queuedIn[L] = queued
  end
end

local i = 4
while i <= #ARGV do
  local R, L, record = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local order, due = tonumber(ARGV[i + 3]), tonumber(ARGV[i + 4])
  local side, msg, ttl = ARGV[i + 5], ARGV[i + 6], ARGV[i + 7]
  i = i + 8
  local lane = lanes[L]
  if present[R] or queuedIn[L][R] then
    out[#out + 1] = 0
  else
    if not lane then
      lane = { n = 0, ready = {}, sides = {}, ttls = {}, minTTL = nil }
      local m = k_lane(tag, L, 'm')
      if redis.call('HSETNX', m, 'm', record) == 1 then
        local E = lane_parts(L)
        redis.call('SADD', k_env(tag, E, 'lanes'), L)
        lane.record = record
      else
        lane.record = redis.call('HGET', m, 'm')
      end
      lanes[L] = lane
      laneOrder[#laneOrder + 1] = L
    end
    -- A run listed twice in one call is added once.
    present[R] = true
    lane.n = lane.n + 1
    -- The lane keeps the task identifier of the run that created it; a run
    -- with another one carries its own in its side value.
    if lane.record ~= record then
      local a, ts, prio = side_parse(side)
      side = side_build(a, ts, prio, split(record, SEP)[4])
    end
    if side ~= '' then
      lane.sides[#lane.sides + 1] = R
      lane.sides[#lane.sides + 1] = side
    end
    if msg ~= '' then redis.call('SET', tag .. ':msg:' .. R, msg) end
    if ttl ~= '' then
      lane.ttls[#lane.ttls + 1] = ttl
      lane.ttls[#lane.ttls + 1] = R
      local t = tonumber(ttl)
      if not lane.minTTL or t < lane.minTTL then
        lane.minTTL = t
        lane.minTTLText = ttl
      end
    end
    if due > now then
      redis.call('ZADD', k_lane(tag, L, 'd'), due, R)
      redis.call('ZADD', tag .. ':due', 'LT', due, L)
      note_due(due)
    else
      lane.ready[#lane.ready + 1] = ARGV[i - 5]
      lane.ready[#lane.ready + 1] = R
    end
    out[#out + 1] = 1
  end
end

-- Per lane: the bulk writes, then the lane's index entry; per environment
-- and worker queue: the environment's entry, once.
local envs = {}
local envOrder = {}
local earliestTTL = nil
for _, L in ipairs(laneOrder) do
  local lane = lanes[L]
  redis.call('HINCRBY', k_lane(tag, L, 'm'), 'n', lane.n)
  if #lane.sides > 0 then redis.call('HSET', k_lane(tag, L, 'x'), unpack(lane.sides)) end
  if #lane.ttls > 0 then
    redis.call('ZADD', k_lane(tag, L, 't'), unpack(lane.ttls))
    redis.call('ZADD', tag .. ':ttlq', 'LT', lane.minTTLText, L)
    if not earliestTTL or tonumber(lane.minTTLText) < tonumber(earliestTTL) then earliestTTL = lane.minTTLText end
  end
  if #lane.ready > 0 then
    local ready = k_lane(tag, L, 'r')
    redis.call('ZADD', ready, unpack(lane.ready))
    local E, Q, W, C = lane_parts(L)
    local head = redis.call('ZRANGE', ready, 0, 0, 'WITHSCORES')
    local idx = k_wqe(tag, W, E)
    if head[1] and redis.call('SISMEMBER', k_var(tag, E .. '|' .. Q .. '|' .. C, 'pl'), L) == 0 then
      redis.call('ZADD', idx, head[2], L)
    else
      redis.call('ZREM', idx, L)
    end
    local ew = E .. '|' .. W
    if not envs[ew] then
      envs[ew] = { E, W }
      envOrder[#envOrder + 1] = ew
    end
  end
end
for _, ew in ipairs(envOrder) do
  local E, W = envs[ew][1], envs[ew][2]
  refresh_env(tag, E, W)
  announce_ready(tag, W)
end
flush_due(tag)
-- The instance holding this shard's expiry lease may not be the one that
-- enqueued: tell every server the earliest new deadline.
if earliestTTL then redis.call('PUBLISH', WAKE, 'x|' .. tag .. '|' .. earliestTTL) end
return out
