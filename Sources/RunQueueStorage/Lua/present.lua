#!lua
-- present.lua: which of these runs does this shard hold in any form (queued
-- in their lane, in flight, or finishing)? Read-only: the reconciler asks
-- before re-adding a row PostgreSQL shows QUEUED.
--
-- KEYS[1]  T:inflight
-- ARGV[1]  tag
-- ARGV[2..] pairs: run id, lane id
--
-- Returns one integer per run: 1 present, 0 absent.
local tag = ARGV[1]
local out = {}
for i = 2, #ARGV, 2 do
  local R, L = ARGV[i], ARGV[i + 1]
  local present = redis.call('HEXISTS', KEYS[1], R) == 1
    or redis.call('ZSCORE', k_lane(tag, L, 'r'), R)
    or redis.call('ZSCORE', k_lane(tag, L, 'd'), R)
    or redis.call('HEXISTS', tag .. ':fin', R) == 1
  if present then out[#out + 1] = 1 else out[#out + 1] = 0 end
end
return out
