#!lua
-- outbox_done.lua: PostgreSQL committed these outbox entries: delete them
-- from the stream and clear the finishing marks they set (only when the mark
-- is still the one this entry set).
--
-- KEYS[1]  T:outbox
-- KEYS[2]  T:fin
-- ARGV[1]  tag
-- ARGV[2..] pairs: entry id, run id
--
-- Returns the number of entries deleted.
local deleted = 0
for i = 2, #ARGV, 2 do
  local id, R = ARGV[i], ARGV[i + 1]
  deleted = deleted + redis.call('XDEL', KEYS[1], id)
  local fin = redis.call('HGET', KEYS[2], R)
  if fin then
    local p = split(fin, SEP)
    if p[3] == id then redis.call('HDEL', KEYS[2], R) end
  end
end
return deleted
