#!lua
-- expiry_lease.lua: the lease on a shard's expiry timer, held by one server
-- at a time (the engine's ExpiryScheduler takes it, renews it while it runs
-- the shard's timer and gives it back at shutdown; another server takes
-- over once it lapses).
--
-- KEYS[1]  T:ttllease
-- ARGV[1]  "take" (take or renew) or "drop" (give back)
-- ARGV[2]  owner (the server's id)
-- ARGV[3]  ttl ms (take)
-- Returns 1 when `owner` holds the lease after "take", else 0; "drop"
-- deletes the lease only when `owner` holds it and returns 1.
if ARGV[1] == 'take' then
  if redis.call('SET', KEYS[1], ARGV[2], 'NX', 'PX', ARGV[3]) then return 1 end
  if redis.call('GET', KEYS[1]) == ARGV[2] then
    redis.call('PEXPIRE', KEYS[1], ARGV[3])
    return 1
  end
  return 0
end
if redis.call('GET', KEYS[1]) == ARGV[2] then redis.call('DEL', KEYS[1]) end
return 1
