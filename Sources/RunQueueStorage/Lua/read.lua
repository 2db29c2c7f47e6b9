#!lua
-- read.lua: finds a run of environment E in this shard: in flight, or
-- queued (due or not yet due) in one of E's lanes. A lease past its deadline
-- is lapsed first, so the answer never shows a dead lease.
--
-- KEYS[1]  T:inflight
-- ARGV[1]  tag
-- ARGV[2]  R
-- ARGV[3]  E
-- ARGV[4]  now ms
-- ARGV[5]  max attempts
--
-- Returns {} when absent, else
--   {state, L, lane record, score, attempt, lease deadline, side, message, TTL deadline or -1}
-- state: "F" in flight (score = timestamp), "R" due (score = order score),
-- "D" not yet due (score = due time).
local tag, R, E, now, maxAttempts = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local function record_of(L) return redis.call('HGET', k_lane(tag, L, 'm'), 'm') or '' end
local function msg_of() return redis.call('GET', tag .. ':msg:' .. R) or '' end
local attempt, deadline, L, ts = inflight_checked(tag, R, E, now, maxAttempts)
if attempt then
  return { 'F', L, record_of(L), string.format('%d', ts), attempt, string.format('%d', deadline),
           redis.call('HGET', k_lane(tag, L, 'x'), R) or '', msg_of(), -1 }
end
for _, L in ipairs(redis.call('SMEMBERS', k_env(tag, E, 'lanes'))) do
  local state, score = 'R', redis.call('ZSCORE', k_lane(tag, L, 'r'), R)
  if not score then state, score = 'D', redis.call('ZSCORE', k_lane(tag, L, 'd'), R) end
  if score then
    local side = redis.call('HGET', k_lane(tag, L, 'x'), R) or ''
    local a = side_parse(side)
    local ttl = redis.call('ZSCORE', k_lane(tag, L, 't'), R) or -1
    return { state, L, record_of(L), score, a, 0, side, msg_of(), ttl }
  end
end
return {}
