#!lua
-- claim.lua: Dequeue's step on one shard. Applies due lapses, promotes runs
-- that came due, then claims up to n due runs for worker queue W: fairly
-- between environments, oldest first within one, within every concurrency
-- cap, each run leased, its slots taken and a D entry appended to the
-- outbox, all in this one script.
--
-- KEYS[1]  T:wq:W
-- KEYS[2]  T:due
-- KEYS[3]  T:leases
-- KEYS[4]  T:inflight
-- ARGV[1]  tag
-- ARGV[2]  W
-- ARGV[3]  now ms
-- ARGV[4]  n: runs wanted (the server sized it so the answer fits a frame)
-- ARGV[5]  lease deadline ms
-- ARGV[6]  default environment limit
-- ARGV[7]  default burst factor
-- ARGV[8]  seed: picks the environment this claim starts with
-- ARGV[9]  environment window: how many of the oldest environments compete
-- ARGV[10] max attempts (for lapses applied here)
-- ARGV[11] housekeeping budget: lapses and promotions applied per call
-- ARGV[12] epoch: the value T:epoch must hold; anything else means this
--          shard's Redis state was lost (or never built) and must be rebuilt
--          from PostgreSQL before it serves claims
--
-- Fairness: the candidate environments are the `window` with the oldest due
-- heads; the claim starts at the seed's environment and goes round them,
-- giving each a share of what is still wanted (ceil(rest / active)), until n
-- runs are taken or no environment has more. With a random seed per call,
-- every candidate environment is first equally often, so a backlog in one
-- environment cannot starve another.
--
-- Parking: an environment at its cap leaves T:wq:W (listed in T:e:E:pw); a
-- lane whose variant is at its cap leaves T:wq:W:e:E (listed in T:v:V:pl).
-- Releasing a slot puts them back. So a claim only meets claimable work and
-- costs O(log n) per run, never a scan of blocked queues.
--
-- Returns { next wake ms or -1, { L1, record1, L2, record2, ... },
--           { R, lane index, timestamp, attempt, side, message, ... } },
-- or { -2 } when the epoch does not match (nothing was changed).
local wqKey, dueKey, leasesKey, inflightKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local tag, W = ARGV[1], ARGV[2]
local now, n, deadline = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local defLimit, defBurst = tonumber(ARGV[6]), tonumber(ARGV[7])
local seed, window = tonumber(ARGV[8]), tonumber(ARGV[9])
local maxAttempts, budget = tonumber(ARGV[10]), tonumber(ARGV[11])
if redis.call('GET', tag .. ':epoch') ~= ARGV[12] then return { -2 } end

lapse_due(tag, now, maxAttempts, budget)

-- Promote runs that came due.
local lanes = redis.call('ZRANGEBYSCORE', dueKey, '-inf', now, 'LIMIT', 0, budget)
for _, L in ipairs(lanes) do
  local d = k_lane(tag, L, 'd')
  local runs = redis.call('ZRANGEBYSCORE', d, '-inf', now, 'WITHSCORES', 'LIMIT', 0, budget)
  local x = k_lane(tag, L, 'x')
  for j = 1, #runs, 2 do
    local R, dueScore = runs[j], tonumber(runs[j + 1])
    local _, ts, prio = side_parse(redis.call('HGET', x, R))
    redis.call('ZADD', k_lane(tag, L, 'r'), (ts or dueScore) - prio, R)
    redis.call('ZREM', d, R)
  end
  refresh_due(tag, L)
  refresh_lane(tag, L)
end

local laneList = {}
local laneIndex = {}
local runsOut = {}
local got = 0

local function take_env(E, want)
  local envCap, envLimit = env_cap(tag, E, defLimit, defBurst)
  local envRun = k_env(tag, E, 'run')
  local idx = k_wqe(tag, W, E)
  local took = 0
  while took < want do
    if redis.call('SCARD', envRun) >= envCap then
      redis.call('SADD', k_env(tag, E, 'pw'), W)
      redis.call('ZREM', wqKey, E)
      return took, false
    end
    local first = redis.call('ZRANGE', idx, 0, 0)
    local L = first[1]
    if not L then
      redis.call('ZREM', wqKey, E)
      return took, false
    end
    local _, Q, _, C = lane_parts(L)
    local V = E .. '|' .. Q .. '|' .. C
    local varRun = k_var(tag, V, 'run')
    local ready = k_lane(tag, L, 'r')
    if redis.call('SCARD', varRun) >= variant_cap(tag, E, Q, envLimit) then
      redis.call('SADD', k_var(tag, V, 'pl'), L)
      redis.call('SADD', k_env(tag, E, 'pv'), V)
      redis.call('ZREM', idx, L)
    else
      local pop = redis.call('ZPOPMIN', ready)
      if pop[1] then
        local R, order = pop[1], tonumber(pop[2])
        local side = redis.call('HGET', k_lane(tag, L, 'x'), R)
        local attempt, ts, prio = side_parse(side)
        local timestamp = ts or (order + prio)
        redis.call('SADD', envRun, R)
        redis.call('SADD', varRun, R)
        -- A run that was dequeued once never expires by TTL.
        redis.call('ZREM', k_lane(tag, L, 't'), R)
        redis.call('HSET', inflightKey, R,
          string.format('%d', attempt) .. SEP .. string.format('%d', deadline) .. SEP .. L .. SEP .. string.format('%d', timestamp))
        redis.call('ZADD', leasesKey, deadline, R)
        outbox(tag, 'D', R, attempt, now)
        local li = laneIndex[L]
        if not li then
          laneList[#laneList + 1] = L
          laneList[#laneList + 1] = redis.call('HGET', k_lane(tag, L, 'm'), 'm') or ''
          li = #laneList / 2
          laneIndex[L] = li
        end
        local msg = redis.call('GET', tag .. ':msg:' .. R) or ''
        runsOut[#runsOut + 1] = R
        runsOut[#runsOut + 1] = li
        runsOut[#runsOut + 1] = string.format('%d', timestamp)
        runsOut[#runsOut + 1] = attempt
        runsOut[#runsOut + 1] = side or ''
        runsOut[#runsOut + 1] = msg
        took = took + 1
      end
      local head = redis.call('ZRANGE', ready, 0, 0, 'WITHSCORES')
      if head[1] then redis.call('ZADD', idx, head[2], L) else redis.call('ZREM', idx, L) end
    end
  end
  refresh_env(tag, E, W)
  return took, redis.call('ZSCORE', wqKey, E) ~= false
end

local envs = redis.call('ZRANGE', wqKey, 0, window - 1)
local k = #envs
if k > 0 then
  local active = {}
  local start = seed % k
  for j = 0, k - 1 do active[#active + 1] = envs[((start + j) % k) + 1] end
  while got < n and #active > 0 do
    local before = got
    local share = math.ceil((n - got) / #active)
    local nextActive = {}
    for _, E in ipairs(active) do
      if got >= n then
        nextActive[#nextActive + 1] = E
      else
        local took, more = take_env(E, math.min(share, n - got))
        got = got + took
        if more then nextActive[#nextActive + 1] = E end
      end
    end
    if got == before then break end
    active = nextActive
  end
end

return { next_wake(tag), laneList, runsOut }
