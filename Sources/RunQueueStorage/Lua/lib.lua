-- lib.lua: helpers shared by every runqueue script. The storage module
-- prepends this file to each script before loading it, so a script is one
-- self-contained EVALSHA body. Nothing here runs on its own.
--
-- Key layout of one shard (tag = "{rqN}"; every key starts with it, so every
-- script touches one cluster slot). Names: E environment, Q queue, W worker
-- queue, C concurrency key ("" = none), R run id. '|' cannot occur in any of
-- them (the protocol forbids it), so it joins them into ids:
--   lane L = E|Q|W|C   (the unit that holds queued runs)
--   variant V = E|Q|C  (the unit of a queue's concurrency slots)
--
--   T:l:L:r    ZSET  R -> order score (timestamp - priority): due runs
--   T:l:L:d    ZSET  R -> due time ms: runs not due yet (delayed, retry backoff)
--   T:l:L:t    ZSET  R -> TTL deadline ms: runs never dequeued that have one
--   T:l:L:x    HASH  R -> V4 side value (only runs that differ from the lane)
--   T:l:L:m    HASH  m -> lane record (org SEP project SEP envType SEP task), n -> runs referencing the lane
--   T:msg:R    STRING  V2 JSON or V3 message (only when written in those formats)
--   T:e:E:lanes SET  lanes of the environment
--   T:e:E:run  SET   runs holding an environment slot
--   T:e:E:lim  HASH  l -> limit, b -> burst factor (absent = defaults)
--   T:e:E:pw   SET   worker queues whose index parked E (E at its cap)
--   T:e:E:pv   SET   variants of E with parked lanes
--   T:v:V:run  SET   runs holding a slot of the variant
--   T:v:V:pl   SET   lanes parked because V is at its cap
--   T:ql:E|Q   STRING queue limit
--   T:wq:W     ZSET  E -> best order score among E's unparked lanes with due runs for W
--   T:wq:W:e:E ZSET  L -> the lane's head order score
--   T:due      ZSET  L -> earliest due time in the lane's delayed set
--   T:ttlq     ZSET  L -> earliest TTL deadline in the lane (may lag low; readers recompute)
--   T:inflight HASH  R -> attempt SEP lease deadline SEP L SEP timestamp
--   T:leases   ZSET  R -> lease deadline ms
--   T:outbox   STREAM every change after creation, for PostgreSQL:
--                    o = op (D dequeued, Q queued again, C completed,
--                    X dead-lettered, E expired), r = run, a = attempt, t = ms,
--                    s = the shard's sequence after this entry
--   T:seq      STRING the shard's sequence: advanced by every outbox entry
--                    (PostgreSQL records the highest it applied)
--   T:fin      HASH  R -> op SEP attempt SEP entry id: runs that left the
--                    queue (completed, dead-lettered, expired) whose entry
--                    PostgreSQL has not applied yet ("finishing")
--   T:pause    STRING present while lapses are paused (the outbox cannot drain)
--   T:epoch    STRING the deployment's epoch (also in PostgreSQL); missing or
--                    different = this shard's state was lost: rebuild first
--   T:ttllease STRING the server holding this shard's expiry timer (expires by itself)
--   {rq0}:meta:shard-count STRING the deployment's shard count (shard 0
--                    only; written by QueueStore.storedShardCount, not a script)
--
-- V4 side value: attempt SEP timestamp SEP priority SEP task identifier, each
-- empty when it equals the default (0, derived from the score, 0, the lane's
-- task identifier). A run with no side value costs nothing beyond its
-- sorted-set entries.

local SEP = '\30'

-- Wake-ups: scripts announce on this channel what may have become claimable,
-- so servers long-polling elsewhere look at once instead of polling:
--   "w|<tag>|<W>"   worker queue W has due work in this shard
--   "s|<tag>|<ms>"  something in this shard comes due at <ms> (a delayed run)
--   "x|<tag>|<ms>"  a TTL deadline at <ms> was armed in this shard (for the
--                   instance holding the shard's expiry lease)
local WAKE = 'runqueue:wake'
local announced = {}
local earliestDue = nil

local function announce_ready(tag, W)
  local m = 'w|' .. tag .. '|' .. W
  if not announced[m] then
    announced[m] = true
    redis.call('PUBLISH', WAKE, m)
  end
end

local function note_due(due)
  if not earliestDue or due < earliestDue then earliestDue = due end
end

-- Scripts that may delay runs call this once before returning.
local function flush_due(tag)
  if earliestDue then redis.call('PUBLISH', WAKE, 's|' .. tag .. '|' .. string.format('%d', earliestDue)) end
end

local function split(s, sep)
  local out = {}
  local start = 1
  while true do
    local i = string.find(s, sep, start, true)
    if not i then
      out[#out + 1] = string.sub(s, start)
      return out
    end
    out[#out + 1] = string.sub(s, start, i - 1)
    start = i + 1
  end
end

local function lane_parts(L)
  local p = split(L, '|')
  return p[1], p[2], p[3], p[4] or ''
end

local function k_lane(tag, L, suffix) return tag .. ':l:' .. L .. ':' .. suffix end
local function k_env(tag, E, suffix) return tag .. ':e:' .. E .. ':' .. suffix end
local function k_var(tag, V, suffix) return tag .. ':v:' .. V .. ':' .. suffix end
local function k_wq(tag, W) return tag .. ':wq:' .. W end
local function k_wqe(tag, W, E) return tag .. ':wq:' .. W .. ':e:' .. E end

-- Appends a change to the shard's outbox; returns the entry id. Every entry
-- advances the shard's sequence (T:seq) and carries it (field s): PostgreSQL
-- records the highest it applied, so a Redis restored from an older
-- snapshot, whose sequence is behind that, is found and rebuilt.
local function outbox(tag, op, R, attempt, now)
  local s = redis.call('INCR', tag .. ':seq')
  return redis.call('XADD', tag .. ':outbox', '*', 'o', op, 'r', R, 'a', string.format('%d', attempt), 't', string.format('%d', now),
                    's', string.format('%d', s))
end

-- One entry for many runs changed the same way by one script call: their
-- ids and attempts joined by SEP, in the same order (a single run is the
-- same entry with one of each). One XADD per call instead of one per run.
local function outbox_many(tag, op, runs, attempts, now)
  local s = redis.call('INCR', tag .. ':seq')
  return redis.call('XADD', tag .. ':outbox', '*', 'o', op, 'r', table.concat(runs, SEP),
                    'a', table.concat(attempts, SEP), 't', string.format('%d', now), 's', string.format('%d', s))
end

-- Marks a run that left the queue as finishing until its entry is applied.
local function mark_finishing(tag, R, op, attempt, id)
  redis.call('HSET', tag .. ':fin', R, op .. SEP .. string.format('%d', attempt) .. SEP .. id)
end

local function lapses_paused(tag)
  return redis.call('EXISTS', tag .. ':pause') == 1
end

-- Side value <-> fields.
local function side_parse(side)
  if not side or side == '' then return 0, nil, 0, nil end
  local p = split(side, SEP)
  local attempt = tonumber(p[1]) or 0
  local ts = nil
  if p[2] and p[2] ~= '' then ts = tonumber(p[2]) end
  local prio = 0
  if p[3] and p[3] ~= '' then prio = tonumber(p[3]) end
  local task = nil
  if p[4] and p[4] ~= '' then task = p[4] end
  return attempt, ts, prio, task
end

local function side_build(attempt, ts, prio, task)
  local a = ''
  if attempt and attempt > 0 then a = string.format('%d', attempt) end
  local t = ''
  if ts then t = string.format('%d', ts) end
  local p = ''
  if prio and prio ~= 0 then p = string.format('%d', prio) end
  local k = task or ''
  if a == '' and t == '' and p == '' and k == '' then return '' end
  return a .. SEP .. t .. SEP .. p .. SEP .. k
end

-- Limits.
local function env_limits(tag, E, defLimit, defBurst)
  local v = redis.call('HMGET', k_env(tag, E, 'lim'), 'l', 'b')
  local limit = tonumber(v[1]) or defLimit
  local burst = tonumber(v[2]) or defBurst
  return limit, burst
end

local function env_cap(tag, E, defLimit, defBurst)
  local limit, burst = env_limits(tag, E, defLimit, defBurst)
  return math.floor(limit * burst + 1e-9), limit
end

local function variant_cap(tag, E, Q, envLimit)
  local ql = tonumber(redis.call('GET', tag .. ':ql:' .. E .. '|' .. Q))
  if ql and ql < envLimit then return ql end
  return envLimit
end

-- Index maintenance. A lane is listed in T:wq:W:e:E with its head score when
-- it has due runs and its variant is not parked; an environment is listed in
-- T:wq:W with its best lane score unless parked for W.
local function refresh_env(tag, E, W)
  local wq = k_wq(tag, W)
  if redis.call('SISMEMBER', k_env(tag, E, 'pw'), W) == 1 then
    redis.call('ZREM', wq, E)
    return
  end
  local first = redis.call('ZRANGE', k_wqe(tag, W, E), 0, 0, 'WITHSCORES')
  if first[1] then
    if redis.call('ZADD', wq, first[2], E) == 1 then announce_ready(tag, W) end
  else
    redis.call('ZREM', wq, E)
  end
end

local function refresh_lane(tag, L)
  local E, Q, W, C = lane_parts(L)
  local idx = k_wqe(tag, W, E)
  local head = redis.call('ZRANGE', k_lane(tag, L, 'r'), 0, 0, 'WITHSCORES')
  if head[1] and redis.call('SISMEMBER', k_var(tag, E .. '|' .. Q .. '|' .. C, 'pl'), L) == 0 then
    redis.call('ZADD', idx, head[2], L)
  else
    redis.call('ZREM', idx, L)
  end
  refresh_env(tag, E, W)
end

local function refresh_due(tag, L)
  local first = redis.call('ZRANGE', k_lane(tag, L, 'd'), 0, 0, 'WITHSCORES')
  if first[1] then
    redis.call('ZADD', tag .. ':due', first[2], L)
  else
    redis.call('ZREM', tag .. ':due', L)
  end
end

-- Unparks everything parked in environment E (after a slot was freed or a
-- limit changed); the next claim parks again what is still at its cap.
local function unpark_env(tag, E)
  local pw = k_env(tag, E, 'pw')
  local ws = redis.call('SMEMBERS', pw)
  if #ws > 0 then
    redis.call('DEL', pw)
    for _, W in ipairs(ws) do refresh_env(tag, E, W) end
  end
end

local function unpark_variant(tag, E, V)
  local pl = k_var(tag, V, 'pl')
  local lanes = redis.call('SMEMBERS', pl)
  if #lanes > 0 then
    redis.call('DEL', pl)
    for _, L in ipairs(lanes) do refresh_lane(tag, L) end
  end
  redis.call('SREM', k_env(tag, E, 'pv'), V)
end

-- Gives back the slots a run holds and unparks what waited for them.
local function release_slots(tag, L, R)
  local E, Q, W, C = lane_parts(L)
  local V = E .. '|' .. Q .. '|' .. C
  redis.call('SREM', k_env(tag, E, 'run'), R)
  redis.call('SREM', k_var(tag, V, 'run'), R)
  unpark_variant(tag, E, V)
  unpark_env(tag, E)
end

-- Lane reference counting: the lane record lives while any run references it.
local function lane_ref(tag, L, record)
  local m = k_lane(tag, L, 'm')
  if redis.call('HSETNX', m, 'm', record) == 1 then
    local E = lane_parts(L)
    redis.call('SADD', k_env(tag, E, 'lanes'), L)
  end
  redis.call('HINCRBY', m, 'n', 1)
end

local function lane_unref(tag, L)
  local m = k_lane(tag, L, 'm')
  if redis.call('HINCRBY', m, 'n', -1) <= 0 then
    local E = lane_parts(L)
    redis.call('DEL', m, k_lane(tag, L, 'x'))
    redis.call('SREM', k_env(tag, E, 'lanes'), L)
  end
end

-- Puts a run (not in flight) back in its lane: ready when due, else delayed.
-- order = timestamp - priority, used once due.
local function queue_run(tag, L, R, due, order, now)
  if due > now then
    redis.call('ZADD', k_lane(tag, L, 'd'), due, R)
    redis.call('ZADD', tag .. ':due', 'LT', due, L)
    note_due(due)
  else
    redis.call('ZADD', k_lane(tag, L, 'r'), order, R)
    refresh_lane(tag, L)
    local _, _, W = lane_parts(L)
    announce_ready(tag, W)
  end
end

-- Removes a run from its lane for good (ack, dead letter, expiry).
local function forget_run(tag, L, R)
  redis.call('HDEL', k_lane(tag, L, 'x'), R)
  redis.call('DEL', tag .. ':msg:' .. R)
  lane_unref(tag, L)
end

-- A failure (nack, lapse) or a release (keep): attempt + 1 unless keep;
-- dead-letters at maxAttempts (the run leaves Redis, finishing until its
-- outbox entry is applied); otherwise queues the run again, due at `due`,
-- ordered by its original timestamp. Returns newAttempt, deadLettered (0/1),
-- outbox entry id.
local function fail_run(tag, L, R, attempt, ts, keep, due, now, maxAttempts)
  local newAttempt = attempt
  if not keep then newAttempt = attempt + 1 end
  local x = k_lane(tag, L, 'x')
  local _, _, prio, task = side_parse(redis.call('HGET', x, R))
  if newAttempt >= maxAttempts then
    forget_run(tag, L, R)
    local id = outbox(tag, 'X', R, newAttempt, now)
    mark_finishing(tag, R, 'X', newAttempt, id)
    return newAttempt, 1, id
  end
  redis.call('HSET', x, R, side_build(newAttempt, ts, prio, task))
  queue_run(tag, L, R, due, ts - prio, now)
  return newAttempt, 0, outbox(tag, 'Q', R, newAttempt, now)
end

-- In-flight record.
local function inflight_get(tag, R)
  local v = redis.call('HGET', tag .. ':inflight', R)
  if not v then return nil end
  local p = split(v, SEP)
  return tonumber(p[1]), tonumber(p[2]), p[3], tonumber(p[4])
end

local function inflight_drop(tag, R)
  redis.call('HDEL', tag .. ':inflight', R)
  redis.call('ZREM', tag .. ':leases', R)
end

-- Applies the lapse of one lease: a failure, due again at once.
local function lapse_run(tag, R, now, maxAttempts)
  local attempt, _, L, ts = inflight_get(tag, R)
  if not attempt then
    redis.call('ZREM', tag .. ':leases', R)
    return
  end
  inflight_drop(tag, R)
  release_slots(tag, L, R)
  fail_run(tag, L, R, attempt, ts, false, now, now, maxAttempts)
end

-- Applies every lapse whose deadline passed, up to `limit` (none while
-- lapses are paused: an outage must not burn attempts).
local function lapse_due(tag, now, maxAttempts, limit)
  if lapses_paused(tag) then return 0 end
  local due = redis.call('ZRANGEBYSCORE', tag .. ':leases', '-inf', now, 'LIMIT', 0, limit)
  for _, R in ipairs(due) do lapse_run(tag, R, now, maxAttempts) end
  return #due
end

-- The in-flight state of R as seen by Ack/Nack/Heartbeat: applies a passed
-- lease first. Returns attempt, deadline, L, timestamp, or nil when not in
-- flight (including a run of another environment, which reads as not found).
local function inflight_checked(tag, R, E, now, maxAttempts)
  local attempt, deadline, L, ts = inflight_get(tag, R)
  if not attempt then return nil end
  local e = lane_parts(L)
  if e ~= E then return nil end
  if deadline <= now and not lapses_paused(tag) then
    lapse_run(tag, R, now, maxAttempts)
    return nil
  end
  return attempt, deadline, L, ts
end

-- Next moment this shard has work coming due (a delayed run, a lease
-- deadline), or -1: the server arms its wake-up timer with it.
local function next_wake(tag)
  local best = -1
  local d = redis.call('ZRANGE', tag .. ':due', 0, 0, 'WITHSCORES')
  if d[2] then best = tonumber(d[2]) end
  local l = redis.call('ZRANGE', tag .. ':leases', 0, 0, 'WITHSCORES')
  if l[2] and (best < 0 or tonumber(l[2]) < best) then best = tonumber(l[2]) end
  return best
end
