-- The end of one admitted request: its slot in flight freed, its token
-- estimate replaced by the actual count, its reservations replaced by the
-- actual cost. Idempotent per lease: a second call finds nothing to release
-- and adds no cost twice.
--
-- KEYS: 1 tokens amounts (hash), 2 concurrency leases (zset), 3 budget
--       account, 4 budget reservations, 5 pool account, 6 pool reservations,
--       7 this lease's done marker (expires after 10 minutes)
-- ARGV: 1 lease id, 2 the tokens entry (ms, "" if none), 3 tokens estimated,
--       4 tokens actual, 5 budget (1/0), 6 period, 7 cost, 8 pool (1/0)

local lease = ARGV[1]
if not redis.call('SET', KEYS[7], 1, 'PX', 600000, 'NX') then
  return 0 -- finished already (a retried call)
end
redis.call('ZREM', KEYS[2], lease)

local entry = ARGV[2]
if entry ~= '' then
  local cur = tonumber(redis.call('HGET', KEYS[1], entry))
  if cur ~= nil then
    local new = math.max(cur + tonumber(ARGV[4]) - tonumber(ARGV[3]), 0)
    redis.call('HSET', KEYS[1], entry, new)
    redis.call('HINCRBY', KEYS[1], 's', new - cur)
  end
end

local cost = ARGV[7] -- integer text, added by Redis as an integer
-- The reservation is released (unless its lease ran out and released it
-- already); the cost counts either way, once (the done marker).
local function release(acct, rz)
  local field = 'r:' .. lease
  local amt = redis.call('HGET', acct, field)
  if amt then
    redis.call('HDEL', acct, field)
    redis.call('HINCRBY', acct, 'r', '-' .. amt)
  end
  redis.call('ZREM', rz, lease)
end

if ARGV[5] == '1' then
  local period = tonumber(ARGV[6])
  release(KEYS[3], KEYS[4])
  local stored = tonumber(redis.call('HGET', KEYS[3], 'p'))
  if stored ~= nil and stored < period then
    redis.call('HSET', KEYS[3], 'p', period, 's', 0)
  end
  -- A cost of an earlier month than the account's is not this month's spend.
  if stored ~= nil and stored <= period then
    redis.call('HINCRBY', KEYS[3], 's', cost)
  end
end
if ARGV[8] == '1' then
  release(KEYS[5], KEYS[6])
  if redis.call('HEXISTS', KEYS[5], 'c') == 1 then
    redis.call('HINCRBY', KEYS[5], 's', cost)
  end
end
return 1
