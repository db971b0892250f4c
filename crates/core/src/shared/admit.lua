-- Admission of one request against every shared limit, all or nothing.
-- Redis runs a script atomically, so no two replicas interleave here: the
-- check and the take are one step, and "at most N" holds across replicas.
-- Time is Redis's own clock (TIME), one clock for every replica; the
-- clock and the window functions come from `window.lua`, run before this.
--
-- KEYS: 1 requests log (zset), 2 requests amounts (hash), 3 tokens log,
--       4 tokens amounts, 5 concurrency leases (zset), 6 budget account
--       (hash), 7 budget reservations (zset), 8 pool account, 9 pool
--       reservations, 10 this request's open marker (deleted by its
--       settlement, which it makes idempotent; 10 minutes at most)
-- ARGV: 1 requests/min, 2 tokens/min, 3 max in flight (-1: none),
--       4 tokens of this request, 5 lease id, 6 lease ms,
--       7 budget (1/0), 8 period, 9 hard limit (-1: none), 10 settled
--       (seed), 11 worst-case cost, 12 pool (1/0), 13 pool hard (1/0),
--       14 pool credited (seed), 15 pool debited (seed)
-- Money and tokens are integers; Redis adds them as integers (HINCRBY with
-- the argument's text). Lua compares them as doubles, exact below 2^53: the
-- caller caps every amount there (9,007,199 USD in nano-USD).
-- Returns {status, retry_ms, remaining_requests, reset_requests_ms,
--          remaining_tokens, reset_tokens_ms, available, now_ms}
-- status: 0 admitted, 1 requests, 2 tokens, 3 concurrency, 4 too large,
--         5 budget, 6 pool


-- Reservations whose lease ran out (their replica died) are released.
local function reserved(acct, rz)
  local dead = redis.call('ZRANGEBYSCORE', rz, '-inf', now)
  for _, m in ipairs(dead) do
    local amt = redis.call('HGET', acct, 'r:' .. m)
    if amt then
      redis.call('HDEL', acct, 'r:' .. m)
      redis.call('HINCRBY', acct, 'r', '-' .. amt)
    end
  end
  if #dead > 0 then redis.call('ZREMRANGEBYSCORE', rz, '-inf', now) end
  return tonumber(redis.call('HGET', acct, 'r')) or 0
end

local rpm = tonumber(ARGV[1])
local tpm = tonumber(ARGV[2])
local max_conc = tonumber(ARGV[3])
local tokens = tonumber(ARGV[4])
local lease = ARGV[5]
local expiry = now + tonumber(ARGV[6])

local used_rq = prune(KEYS[1], KEYS[2])
local used_tok = prune(KEYS[3], KEYS[4])
local function result(status, retry, available, took_rq, took_tok)
  return {status, retry, math.max(rpm - used_rq - took_rq, 0), reset_in(KEYS[1]),
          math.max(tpm - used_tok - took_tok, 0), reset_in(KEYS[3]), available, now}
end

if max_conc >= 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now)
  if redis.call('ZCARD', KEYS[5]) >= max_conc then return result(3, 1000, 0, 0, 0) end
end
if used_rq + 1 > rpm then
  return result(1, retry_after(KEYS[1], KEYS[2], used_rq, 1, rpm), 0, 0, 0)
end
if tokens > tpm then return result(4, WINDOW, 0, 0, 0) end
if used_tok + tokens > tpm then
  return result(2, retry_after(KEYS[3], KEYS[4], used_tok, tokens, tpm), 0, 0, 0)
end

local worst = tonumber(ARGV[11])
local budget = ARGV[7] == '1'
if budget then
  local acct = KEYS[6]
  local period = tonumber(ARGV[8])
  local stored = tonumber(redis.call('HGET', acct, 'p'))
  if stored == nil then
    redis.call('HSET', acct, 'p', period, 's', ARGV[10])
  elseif stored < period then
    -- A new month: what was spent belongs to the old one.
    redis.call('HSET', acct, 'p', period, 's', 0)
  end
  local limit = tonumber(ARGV[9])
  if limit >= 0 then
    local available = limit - (tonumber(redis.call('HGET', acct, 's')) or 0) - reserved(acct, KEYS[7])
    if worst > available then return result(5, 0, math.max(available, 0), 0, 0) end
  end
end
local pool = ARGV[12] == '1'
if pool then
  local acct = KEYS[8]
  if redis.call('HEXISTS', acct, 'c') == 0 then
    redis.call('HSET', acct, 'c', ARGV[14], 's', ARGV[15])
  end
  if ARGV[13] == '1' then
    local available = (tonumber(redis.call('HGET', acct, 'c')) or 0)
      - (tonumber(redis.call('HGET', acct, 's')) or 0) - reserved(acct, KEYS[9])
    if worst > available then return result(6, 0, math.max(available, 0), 0, 0) end
  end
end

-- Everything fits: take it all.
redis.call('SET', KEYS[10], 1, 'PX', 600000)
add(KEYS[1], KEYS[2], 1)
if tokens > 0 then add(KEYS[3], KEYS[4], tokens) end
if max_conc >= 0 then
  redis.call('ZADD', KEYS[5], expiry, lease)
  redis.call('PEXPIRE', KEYS[5], WINDOW * 10)
end
if budget then
  redis.call('ZADD', KEYS[7], expiry, lease)
  redis.call('HSET', KEYS[6], 'r:' .. lease, ARGV[11])
  redis.call('HINCRBY', KEYS[6], 'r', ARGV[11])
end
if pool then
  redis.call('ZADD', KEYS[9], expiry, lease)
  redis.call('HSET', KEYS[8], 'r:' .. lease, ARGV[11])
  redis.call('HINCRBY', KEYS[8], 'r', ARGV[11])
end
return result(0, 0, 0, 1, tokens)
