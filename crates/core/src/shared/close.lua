-- The end of leased slices, one or many at once (see `slices.rs`): what a
-- slice did not use is given back to its log entries (requests unused, and
-- its tokens replaced by the actual count of the requests it admitted).
-- Idempotent per slice: leasing left an open marker, the first close
-- deletes it, a second call (a retry whose first answer was lost) finds
-- none and changes nothing. An entry that left the window is not touched.
--
-- Per slice i (from 0): KEYS[3i+1..3i+3] = 1 requests amounts (hash),
--   2 tokens amounts (hash), 3 the slice's open marker;
-- ARGV[3i+1..3i+3] = 1 the entry (ms), 2 requests to take off,
--   3 tokens to add (negative: to take off).
-- Returns how many were closed now (not before).

local function adjust(h, entry, delta)
  if delta == 0 then return end
  local cur = tonumber(redis.call('HGET', h, entry))
  if cur ~= nil then
    local new = math.max(cur + delta, 0)
    redis.call('HSET', h, entry, new)
    redis.call('HINCRBY', h, 's', new - cur)
  end
end

local closed = 0
for i = 0, #KEYS / 3 - 1 do
  if redis.call('DEL', KEYS[3 * i + 3]) == 1 then
    local entry = ARGV[3 * i + 1]
    adjust(KEYS[3 * i + 1], entry, -tonumber(ARGV[3 * i + 2]))
    adjust(KEYS[3 * i + 2], entry, tonumber(ARGV[3 * i + 3]))
    closed = closed + 1
  end
end
return closed
