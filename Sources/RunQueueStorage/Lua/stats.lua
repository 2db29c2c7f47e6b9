#!lua
-- stats.lua: QueueStats for an environment, one queue, or one concurrency
-- key of a queue. Applies due lapses first so in-flight counts never include
-- a lease that has passed.
--
-- KEYS[1]  T:leases
-- ARGV[1]  tag
-- ARGV[2]  E
-- ARGV[3]  Q ("" = every queue of E)
-- ARGV[4]  C ("" = every concurrency key)
-- ARGV[5]  now ms
-- ARGV[6]  default environment limit
-- ARGV[7]  default burst factor
-- ARGV[8]  max attempts
--
-- Returns {length, due, in flight, oldest due order score or -1, effective cap}.
-- The oldest age uses the order score (timestamp - priority) of due runs, and
-- the due time of runs that came due but were not promoted yet.
local tag, E, Q, C = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local now = tonumber(ARGV[5])
local defLimit, defBurst = tonumber(ARGV[6]), tonumber(ARGV[7])
lapse_due(tag, now, tonumber(ARGV[8]), 1000)
local length, due, oldest = 0, 0, -1
local variants = {}
for _, L in ipairs(redis.call('SMEMBERS', k_env(tag, E, 'lanes'))) do
  local _, q, _, c = lane_parts(L)
  if (Q == '' or q == Q) and (C == '' or c == C) then
    variants[E .. '|' .. q .. '|' .. c] = true
    local r, d = k_lane(tag, L, 'r'), k_lane(tag, L, 'd')
    local nr = redis.call('ZCARD', r)
    length = length + nr + redis.call('ZCARD', d)
    due = due + nr + redis.call('ZCOUNT', d, '-inf', now)
    local head = redis.call('ZRANGE', r, 0, 0, 'WITHSCORES')
    if head[2] and (oldest < 0 or tonumber(head[2]) < oldest) then oldest = tonumber(head[2]) end
    local dhead = redis.call('ZRANGE', d, 0, 0, 'WITHSCORES')
    if dhead[2] and tonumber(dhead[2]) <= now and (oldest < 0 or tonumber(dhead[2]) < oldest) then
      oldest = tonumber(dhead[2])
    end
  end
end
local cap, envLimit = env_cap(tag, E, defLimit, defBurst)
local inflight = 0
if Q == '' and C == '' then
  inflight = redis.call('SCARD', k_env(tag, E, 'run'))
else
  for V, _ in pairs(variants) do inflight = inflight + redis.call('SCARD', k_var(tag, V, 'run')) end
end
if Q ~= '' then cap = variant_cap(tag, E, Q, envLimit) end
return { length, due, inflight, string.format('%d', oldest), cap }
