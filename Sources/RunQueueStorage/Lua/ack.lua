#!lua
-- ack.lua: completes in-flight runs (one or many, in order): gives back
-- their slots, removes them from the queue, appends one C entry for all the
-- runs it completes to the outbox and marks each run finishing until
-- PostgreSQL has it. Every run is
-- checked on its own (environment, fence, lease); one run's answer never
-- depends on another's, except that a run acked earlier in the same call
-- reads as already completed.
--
-- KEYS[1]  T:inflight
-- KEYS[2]  T:leases
-- ARGV[1]  tag
-- ARGV[2]  now ms (a lease past its deadline is lapsed: applied here first)
-- ARGV[3]  max attempts (for that lapse)
-- then 3 entries per run:
--   R, E (a run of another environment reads as not in flight),
--   fence: the attempt the worker was given ("" = no fence)
--
-- Returns one answer per run, in order: {1, entry id, attempt} acked; {2, attempt,
-- entry id} already completed and still finishing (a retry: the caller waits
-- for that entry like the first call did); {0} not in flight (nothing
-- changed); {-1, attempt} the fence does not match the current attempt
-- (nothing changed).
--
-- Per-lane and per-environment upkeep (slot sets, unparking, lane reference
-- counts) is done once per touched lane / variant / environment at the end,
-- not once per run.
local inflightKey, leasesKey = KEYS[1], KEYS[2]
local tag = ARGV[1]
local now, maxAttempts = tonumber(ARGV[2]), tonumber(ARGV[3])
local count = (#ARGV - 3) / 3

local ids = {}
for j = 1, count do ids[j] = ARGV[1 + j * 3] end
local raw = redis.call('HMGET', inflightKey, unpack(ids))

local out = {}
local acked = {}      -- R -> true once acked in this call (its in-flight record is gone)
local finLocal = {}   -- R -> attempt of acks in this call
local dropped = {}    -- runs whose in-flight record and lease go
local envRuns, envOrder = {}, {}
local varRuns, varOrder, varEnv = {}, {}, {}
local laneRuns, laneOrder = {}, {}
local msgKeys = {}
local cRuns, cAttempts = {}, {}
-- Answers that carry the C entry's id, known once it is appended at the end:
-- { answer table, index of the id in it }.
local needID = {}
local pausedKnown = nil
-- Lane id -> its parts, split once per lane rather than twice per run.
local partsOf = {}
local function parts(L)
  local p = partsOf[L]
  if not p then
    local E, Q, W, C = lane_parts(L)
    p = { E, Q, W, C }
    partsOf[L] = p
  end
  return p
end

local function paused()
  if pausedKnown == nil then pausedKnown = lapses_paused(tag) end
  return pausedKnown
end

for j = 1, count do
  local base = 1 + j * 3
  local R, E, fence = ARGV[base], ARGV[base + 1], ARGV[base + 2]
  local attempt, deadline, L
  local v = raw[j]
  if v and not acked[R] then
    local p = split(v, SEP)
    attempt, deadline, L = tonumber(p[1]), tonumber(p[2]), p[3]
    if parts(L)[1] ~= E then
      attempt = nil
    elseif deadline <= now and not paused() then
      -- A duplicate of R later in this call reads the lapse's result.
      lapse_run(tag, R, now, maxAttempts)
      acked[R] = true
      attempt = nil
    end
  end
  if not attempt then
    local f = finLocal[R]
    if f then
      local answer = { 2, f, '' }
      needID[#needID + 1] = { answer, 3 }
      out[#out + 1] = answer
    else
      local fin = redis.call('HGET', tag .. ':fin', R)
      local p = fin and split(fin, SEP)
      if p and p[1] == 'C' then out[#out + 1] = { 2, tonumber(p[2]), p[3] } else out[#out + 1] = { 0 } end
    end
  elseif fence ~= '' and tonumber(fence) ~= attempt then
    out[#out + 1] = { -1, attempt }
  else
    acked[R] = true
    dropped[#dropped + 1] = R
    local p = parts(L)
    local V = p[5]
    if not V then
      V = E .. '|' .. p[2] .. '|' .. p[4]
      p[5] = V
    end
    if not envRuns[E] then envRuns[E] = {}; envOrder[#envOrder + 1] = E end
    local er = envRuns[E]; er[#er + 1] = R
    if not varRuns[V] then varRuns[V] = {}; varOrder[#varOrder + 1] = V; varEnv[V] = E end
    local vr = varRuns[V]; vr[#vr + 1] = R
    if not laneRuns[L] then laneRuns[L] = {}; laneOrder[#laneOrder + 1] = L end
    local lr = laneRuns[L]; lr[#lr + 1] = R
    msgKeys[#msgKeys + 1] = tag .. ':msg:' .. R
    cRuns[#cRuns + 1] = R
    cAttempts[#cAttempts + 1] = attempt
    finLocal[R] = attempt
    local answer = { 1, '', attempt }
    needID[#needID + 1] = { answer, 2 }
    out[#out + 1] = answer
  end
end

if #cRuns > 0 then
  local id = outbox_many(tag, 'C', cRuns, cAttempts, now)
  for _, slot in ipairs(needID) do slot[1][slot[2]] = id end
  local finArgs = {}
  for j, R in ipairs(cRuns) do
    finArgs[#finArgs + 1] = R
    finArgs[#finArgs + 1] = 'C' .. SEP .. string.format('%d', cAttempts[j]) .. SEP .. id
  end
  redis.call('HSET', tag .. ':fin', unpack(finArgs))
end

if #dropped > 0 then
  redis.call('HDEL', inflightKey, unpack(dropped))
  redis.call('ZREM', leasesKey, unpack(dropped))
  for _, E in ipairs(envOrder) do redis.call('SREM', k_env(tag, E, 'run'), unpack(envRuns[E])) end
  for _, V in ipairs(varOrder) do redis.call('SREM', k_var(tag, V, 'run'), unpack(varRuns[V])) end
  for _, V in ipairs(varOrder) do unpark_variant(tag, varEnv[V], V) end
  for _, E in ipairs(envOrder) do unpark_env(tag, E) end
  for _, L in ipairs(laneOrder) do
    local runs = laneRuns[L]
    redis.call('HDEL', k_lane(tag, L, 'x'), unpack(runs))
    local m = k_lane(tag, L, 'm')
    if redis.call('HINCRBY', m, 'n', -#runs) <= 0 then
      local E = lane_parts(L)
      redis.call('DEL', m, k_lane(tag, L, 'x'))
      redis.call('SREM', k_env(tag, E, 'lanes'), L)
    end
  end
  redis.call('DEL', unpack(msgKeys))
end
return out
