#!lua
-- expire.lua: the TTL system's step on one shard. Finds the lanes whose
-- earliest TTL deadline has passed (T:ttlq; a recorded deadline may lag low,
-- because claims remove runs from a lane's TTL index without touching
-- T:ttlq, so the lane's true minimum is recomputed from T:l:L:t), and
-- expires each run whose deadline passed: removed from every structure
-- (ready or delayed set, TTL index, side value, V2/V3 message, lane reference
-- count, indexes), an E entry appended to the outbox and the run marked
-- finishing until PostgreSQL has applied it, all in this one script.
--
-- A run in a TTL index was never dequeued (the claim removes it from the
-- index in the same script that takes it), so expiry and dequeue race only
-- here, inside Redis: a run is either dequeued or expired, never both.
--
-- KEYS[1]  T:ttlq
-- KEYS[2]  T:outbox
-- KEYS[3]  T:fin
-- ARGV[1]  tag
-- ARGV[2]  now ms
-- ARGV[3]  batch: at most this many runs expire (and lanes are visited) per call
--
-- Returns { expired, next deadline ms or -1, oldest deadline expired here or
-- -1 (its lateness is now - it), outbox length }. A next deadline <= now means
-- more work is due (the batch ran out): call again at once.
local ttlq, outboxKey = KEYS[1], KEYS[2]
local tag = ARGV[1]
local now, batch = tonumber(ARGV[2]), tonumber(ARGV[3])

local expired = 0
local visits = 0
local oldest = -1
while expired < batch and visits < batch do
  local first = redis.call('ZRANGE', ttlq, 0, 0, 'WITHSCORES')
  if not first[1] or tonumber(first[2]) > now then break end
  visits = visits + 1
  local L = first[1]
  local t = k_lane(tag, L, 't')
  local runs = redis.call('ZRANGEBYSCORE', t, '-inf', now, 'WITHSCORES', 'LIMIT', 0, batch - expired)
  local ready, delayed = k_lane(tag, L, 'r'), k_lane(tag, L, 'd')
  local touchedReady, touchedDelayed = false, false
  for j = 1, #runs, 2 do
    local R, deadline = runs[j], tonumber(runs[j + 1])
    redis.call('ZREM', t, R)
    local inReady = redis.call('ZREM', ready, R) == 1
    local inDelayed = (not inReady) and redis.call('ZREM', delayed, R) == 1
    -- Only a run still queued in this lane expires; an index entry of a run
    -- found nowhere else is stale and is just dropped.
    if inReady or inDelayed then
      if inReady then touchedReady = true else touchedDelayed = true end
      local attempt = side_parse(redis.call('HGET', k_lane(tag, L, 'x'), R))
      forget_run(tag, L, R)
      local id = outbox(tag, 'E', R, attempt, now)
      mark_finishing(tag, R, 'E', attempt, id)
      expired = expired + 1
      if oldest < 0 or deadline < oldest then oldest = deadline end
    end
  end
  if touchedDelayed then refresh_due(tag, L) end
  if touchedReady then refresh_lane(tag, L) end
  -- The lane's true earliest deadline (or none).
  local m = redis.call('ZRANGE', t, 0, 0, 'WITHSCORES')
  if m[1] then
    redis.call('ZADD', ttlq, m[2], L)
  else
    redis.call('ZREM', ttlq, L)
  end
end

local nextDeadline = -1
local head = redis.call('ZRANGE', ttlq, 0, 0, 'WITHSCORES')
if head[2] then nextDeadline = tonumber(head[2]) end
return { expired, nextDeadline, oldest, redis.call('XLEN', outboxKey) }
