#!lua
-- limits.lua: sets or clears an environment's limit and burst factor, or a
-- queue's limit, then unparks everything parked in the environment so the
-- next claim re-checks against the new caps. A lower limit never revokes a
-- lease: it only stops new claims.
--
-- KEYS[1]  T:due (declares the shard's slot)
-- ARGV[1]  tag
-- ARGV[2]  E
-- ARGV[3]  Q ("" = the environment)
-- ARGV[4]  "set" or "clear"
-- ARGV[5]  limit (for set)
-- ARGV[6]  burst factor (environment only; 0 = unchanged)
--
-- Returns {1}.
local tag, E, Q, op = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local limit, burst = tonumber(ARGV[5]), tonumber(ARGV[6])
if Q == '' then
  local lim = k_env(tag, E, 'lim')
  if op == 'clear' then
    redis.call('DEL', lim)
  else
    redis.call('HSET', lim, 'l', limit)
    if burst > 0 then redis.call('HSET', lim, 'b', ARGV[6]) end
  end
else
  local ql = tag .. ':ql:' .. E .. '|' .. Q
  if op == 'clear' then redis.call('DEL', ql) else redis.call('SET', ql, limit) end
end
for _, V in ipairs(redis.call('SMEMBERS', k_env(tag, E, 'pv'))) do unpark_variant(tag, E, V) end
unpark_env(tag, E)
return { 1 }
