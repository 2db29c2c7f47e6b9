#!lua
-- pause.lua: pauses (or resumes) lease lapses on a shard while its outbox
-- cannot drain, so a PostgreSQL outage does not burn attempts. The pause
-- expires by itself after `ttl` ms unless renewed, so a server that dies
-- while pausing cannot stop lapses for good.
--
-- KEYS[1]  T:pause
-- ARGV[1]  "on" or "off"
-- ARGV[2]  ttl ms (for on)
if ARGV[1] == 'on' then
  redis.call('SET', KEYS[1], '1', 'PX', ARGV[2])
else
  redis.call('DEL', KEYS[1])
end
return 1
