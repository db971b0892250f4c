-- Console sign-in throttling shared by every replica (the same policy as
-- one process's: see crates/admin/src/signin.rs).
-- KEYS: 1 the (email, address) pair's counter, 2 the address's counter
-- ARGV: 1 "begin" or "success", 2–4 pair policy (free, base ms, cap ms),
--       5–7 address policy, 8 forget after (ms)
-- begin: the wait in ms (nothing counted), or 0 once the attempt is counted.
-- success: the pair starts over, the address gets its attempt back.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local forget = tonumber(ARGV[8])

local function delay(count, free, base, cap)
  if count < free then return 0 end
  local d = base * (2 ^ math.min(count - free, 31))
  return math.min(d, cap)
end

local policies = {
  {tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])},
  {tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])},
}

if ARGV[1] == 'begin' then
  local wait = 0
  for i = 1, 2 do
    local nxt = tonumber(redis.call('HGET', KEYS[i], 'n'))
    if nxt and nxt > now then wait = math.max(wait, nxt - now) end
  end
  if wait > 0 then return wait end
  for i = 1, 2 do
    local p = policies[i]
    local c = redis.call('HINCRBY', KEYS[i], 'c', 1)
    redis.call('HSET', KEYS[i], 'l', now, 'n', now + delay(c, p[1], p[2], p[3]))
    redis.call('PEXPIRE', KEYS[i], forget)
  end
  return 0
end

redis.call('DEL', KEYS[1])
if redis.call('EXISTS', KEYS[2]) == 1 then
  local c = math.max(redis.call('HINCRBY', KEYS[2], 'c', -1), 0)
  local last = tonumber(redis.call('HGET', KEYS[2], 'l')) or now
  local p = policies[2]
  redis.call('HSET', KEYS[2], 'c', c, 'n', last + delay(c, p[1], p[2], p[3]))
end
return 0
