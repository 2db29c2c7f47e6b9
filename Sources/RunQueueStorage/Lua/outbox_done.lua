#!lua
-- outbox_done.lua: PostgreSQL committed these outbox entries: delete them
-- from the stream and clear the finishing marks they set (only when the mark
-- is still the one this entry set).
--
-- KEYS[1]  T:outbox
-- KEYS[2]  T:fin
-- ARGV[1]  tag
-- ARGV[2]  "" = delete exactly the listed entries; or an entry id N: every
--          entry below N is applied (or superseded), so the stream is
--          trimmed below N at once (XTRIM MINID, whole nodes: far cheaper
--          than XDEL per entry) and the pairs only need to list the entries
--          that may have set a finishing mark
-- ARGV[3..] pairs: entry id, run id
--
-- Returns the number of entries deleted.
local deleted = 0
local below = ARGV[2]
if below ~= '' then deleted = redis.call('XTRIM', KEYS[1], 'MINID', below) end
for i = 3, #ARGV, 2 do
  local id, R = ARGV[i], ARGV[i + 1]
  if below == '' then deleted = deleted + redis.call('XDEL', KEYS[1], id) end
  local fin = redis.call('HGET', KEYS[2], R)
  if fin then
    local p = split(fin, SEP)
    if p[3] == id then redis.call('HDEL', KEYS[2], R) end
  end
end
return deleted
