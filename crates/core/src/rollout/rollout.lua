-- Adds one replica's measurements of a rollout to the deployment's, and
-- reads the deployment's back, in one step.
--
-- KEYS: the keys written (hashes: the totals, one per 10-second bucket),
--       then the keys read (the totals first, then the buckets in order).
-- ARGV: 1 number of keys written, then for each: how long it is kept (ms),
--       its field count n, and n (field, integer) pairs. A field starting
--       with '<' keeps the smallest value written, '>' the largest; every
--       other field is added to (HINCRBY: integers, exact).
-- Returns one flat HGETALL list per key read.

local written = tonumber(ARGV[1])
local i = 2
for k = 1, written do
  local key = KEYS[k]
  local keep = ARGV[i]
  local n = tonumber(ARGV[i + 1])
  i = i + 2
  for _ = 1, n do
    local field, value = ARGV[i], ARGV[i + 1]
    i = i + 2
    local first = string.sub(field, 1, 1)
    if first == '<' or first == '>' then
      local cur = tonumber(redis.call('HGET', key, field))
      local v = tonumber(value)
      if cur == nil or (first == '<' and v < cur) or (first == '>' and v > cur) then
        redis.call('HSET', key, field, value)
      end
    else
      redis.call('HINCRBY', key, field, value)
    end
  end
  redis.call('PEXPIRE', key, keep)
end
local out = {}
for k = written + 1, #KEYS do
  out[#out + 1] = redis.call('HGETALL', KEYS[k])
end
return out
