#!lua
-- claim.lua: Dequeue's step on one shard. Applies due lapses, promotes runs
-- that came due, then claims up to n due runs for worker queue W: fairly
-- between environments, oldest first within one, within every concurrency
-- cap, each run leased, its slots taken and one D entry for all of them
-- appended to the outbox, all in this one script.
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
local dRuns, dAttempts = {}, {}
local got = 0

local varCaps = {}

-- Takes up to `want` runs of environment E, oldest first across its lanes.
-- Each lane visit takes as many runs as the caps allow at once, but never a
-- run ordered after the next lane's head (so the order across lanes is the
-- same as taking one run at a time from whichever lane has the oldest head).
local function take_env(E, want)
  local envCap, envLimit = env_cap(tag, E, defLimit, defBurst)
  local envRun = k_env(tag, E, 'run')
  local idx = k_wqe(tag, W, E)
  local envCount = redis.call('SCARD', envRun)
  local took = 0
  while took < want do
    if envCount >= envCap then
      redis.call('SADD', k_env(tag, E, 'pw'), W)
      redis.call('ZREM', wqKey, E)
      return took, false
    end
    local first = redis.call('ZRANGE', idx, 0, 1, 'WITHSCORES')
    local L = first[1]
    if not L then
      redis.call('ZREM', wqKey, E)
      return took, false
    end
    local _, Q, _, C = lane_parts(L)
    local V = E .. '|' .. Q .. '|' .. C
    local varRun = k_var(tag, V, 'run')
    local ready = k_lane(tag, L, 'r')
    local varCap = varCaps[V]
    if not varCap then
      varCap = variant_cap(tag, E, Q, envLimit)
      varCaps[V] = varCap
    end
    local varCount = redis.call('SCARD', varRun)
    if varCount >= varCap then
      redis.call('SADD', k_var(tag, V, 'pl'), L)
      redis.call('SADD', k_env(tag, E, 'pv'), V)
      redis.call('ZREM', idx, L)
    else
      local k = math.min(want - took, envCap - envCount, varCap - varCount)
      local pop
      if first[3] then
        -- Runs ordered strictly before the next lane's head; a tie is
        -- taken one run at a time, the index deciding between the lanes.
        pop = redis.call('ZRANGEBYSCORE', ready, '-inf', '(' .. first[4], 'WITHSCORES', 'LIMIT', 0, k)
        if #pop == 0 then pop = redis.call('ZRANGE', ready, 0, 0, 'WITHSCORES') end
        if #pop > 0 then
          local members = {}
          for j = 1, #pop, 2 do members[#members + 1] = pop[j] end
          redis.call('ZREM', ready, unpack(members))
        end
      else
        pop = redis.call('ZPOPMIN', ready, k)
      end
      local m = #pop / 2
      if m > 0 then
        local rs, msgKeys = {}, {}
        for j = 1, m do
          rs[j] = pop[2 * j - 1]
          msgKeys[j] = tag .. ':msg:' .. rs[j]
        end
        local sides = redis.call('HMGET', k_lane(tag, L, 'x'), unpack(rs))
        local msgs = redis.call('MGET', unpack(msgKeys))
        local li = laneIndex[L]
        if not li then
          laneList[#laneList + 1] = L
          laneList[#laneList + 1] = redis.call('HGET', k_lane(tag, L, 'm'), 'm') or ''
          li = #laneList / 2
          laneIndex[L] = li
        end
        local dl = string.format('%d', deadline)
        local inflightArgs, leaseArgs = {}, {}
        for j = 1, m do
          local R, order = rs[j], tonumber(pop[2 * j])
          local side = sides[j]
          local attempt, ts, prio = side_parse(side)
          local timestamp = ts or (order + prio)
          local tsText = string.format('%d', timestamp)
          inflightArgs[#inflightArgs + 1] = R
          inflightArgs[#inflightArgs + 1] = string.format('%d', attempt) .. SEP .. dl .. SEP .. L .. SEP .. tsText
          leaseArgs[#leaseArgs + 1] = dl
          leaseArgs[#leaseArgs + 1] = R
          dRuns[#dRuns + 1] = R
          dAttempts[#dAttempts + 1] = attempt
          runsOut[#runsOut + 1] = R
          runsOut[#runsOut + 1] = li
          runsOut[#runsOut + 1] = tsText
          runsOut[#runsOut + 1] = attempt
          runsOut[#runsOut + 1] = side or ''
          runsOut[#runsOut + 1] = msgs[j] or ''
        end
        envCount = envCount + redis.call('SADD', envRun, unpack(rs))
        redis.call('SADD', varRun, unpack(rs))
        -- A run that was dequeued once never expires by TTL.
        redis.call('ZREM', k_lane(tag, L, 't'), unpack(rs))
        redis.call('HSET', inflightKey, unpack(inflightArgs))
        redis.call('ZADD', leasesKey, unpack(leaseArgs))
        took = took + m
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

-- Every run taken by this call: one D entry.
if #dRuns > 0 then outbox_many(tag, 'D', dRuns, dAttempts, now) end
return { next_wake(tag), laneList, runsOut }
