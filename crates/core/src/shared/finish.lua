-- The end of admitted requests, one or many at once (a batch costs one
-- call): each one's slot in flight freed, its token estimate replaced by
-- the actual count, its reservations replaced by the actual cost.
-- Idempotent per lease: admission left an open marker, the first
-- settlement deletes it, and a second call (a retry whose first answer was
-- lost) finds none and changes nothing. No key outlives its request.
--
-- Per request i (from 0): KEYS[7i+1..7i+7] = 1 tokens amounts (hash),
--   2 concurrency leases (zset), 3 budget account, 4 budget reservations,
--   5 pool account, 6 pool reservations, 7 this lease's open marker;
-- ARGV[8i+1..8i+8] = 1 lease id, 2 the tokens entry (ms, "" if none),
--   3 tokens estimated, 4 tokens actual, 5 budget (1/0), 6 period, 7 cost,
--   8 pool (1/0).
-- Returns how many were settled now (not before).

local function finish(K, A)
  local lease = A[1]
  if redis.call('DEL', K[7]) == 0 then
    return 0 -- finished already (a retried call), or never admitted
  end
  redis.call('ZREM', K[2], lease)

  local entry = A[2]
  if entry ~= '' then
    local cur = tonumber(redis.call('HGET', K[1], entry))
    if cur ~= nil then
      local new = math.max(cur + tonumber(A[4]) - tonumber(A[3]), 0)
      redis.call('HSET', K[1], entry, new)
      redis.call('HINCRBY', K[1], 's', new - cur)
    end
  end

  local cost = A[7] -- integer text, added by Redis as an integer
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

  if A[5] == '1' then
    local period = tonumber(A[6])
    release(K[3], K[4])
    local stored = tonumber(redis.call('HGET', K[3], 'p'))
    if stored ~= nil and stored < period then
      redis.call('HSET', K[3], 'p', period, 's', 0)
    end
    -- A cost of an earlier month than the account's is not this month's spend.
    if stored ~= nil and stored <= period then
      redis.call('HINCRBY', K[3], 's', cost)
    end
  end
  if A[8] == '1' then
    release(K[5], K[6])
    if redis.call('HEXISTS', K[5], 'c') == 1 then
      redis.call('HINCRBY', K[5], 's', cost)
    end
  end
  return 1
end

local settled = 0
for i = 0, #KEYS / 7 - 1 do
  local K, A = {}, {}
  for j = 1, 7 do K[j] = KEYS[7 * i + j] end
  for j = 1, 8 do A[j] = ARGV[8 * i + j] end
  settled = settled + finish(K, A)
end
return settled
