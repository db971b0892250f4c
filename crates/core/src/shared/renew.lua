-- Leases of requests still in flight on a live replica, extended.
-- KEYS: lease sets (zsets); ARGV: 1 lease ms, then one lease id per key.
-- Only leases still present are extended (ZADD XX): one released or run out
-- stays gone.
local t = redis.call('TIME')
local expiry = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, 'XX', expiry, ARGV[i + 1])
end
return #KEYS
