-- The clock and the sliding-window logs both scripts share (`admit.lua`,
-- `capacity.lua`): the script text is this file followed by the script's
-- own (see `shared::script`). Time is Redis's own clock (TIME), one clock
-- for every replica.

local WINDOW = 60000
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

-- A sliding-window log (a sorted set of milliseconds and a hash of their
-- amounts, with their sum in field 's'): its total once what left the
-- window is dropped.
local function prune(z, h)
  local old = redis.call('ZRANGEBYSCORE', z, '-inf', now - WINDOW)
  if #old > 0 then
    local freed = 0
    for _, m in ipairs(old) do
      freed = freed + (tonumber(redis.call('HGET', h, m)) or 0)
      redis.call('HDEL', h, m)
    end
    redis.call('ZREMRANGEBYSCORE', z, '-inf', now - WINDOW)
    redis.call('HINCRBY', h, 's', -freed)
  end
  return tonumber(redis.call('HGET', h, 's')) or 0
end

local function reset_in(z)
  local first = redis.call('ZRANGE', z, 0, 0, 'WITHSCORES')
  if #first == 0 then return 0 end
  return tonumber(first[2]) + WINDOW - now
end

-- How long until `amount` fits under `limit` (entries leave oldest first).
local function retry_after(z, h, used, amount, limit)
  local need = used + amount - limit
  local entries = redis.call('ZRANGE', z, 0, 999, 'WITHSCORES')
  local freed = 0
  for i = 1, #entries, 2 do
    freed = freed + (tonumber(redis.call('HGET', h, entries[i])) or 0)
    if freed >= need then return tonumber(entries[i + 1]) + WINDOW - now end
  end
  return WINDOW
end

-- Adds `amount` to the entry of millisecond `at` (now, or a leased
-- slice's end: see `lease.lua`). The log's keys expire two windows after
-- their newest millisecond (set once per new millisecond, not per
-- request): an idle tenant leaves nothing.
local function add_at(z, h, amount, at)
  local m = tostring(at)
  if redis.call('ZADD', z, at, m) == 1 then
    redis.call('PEXPIRE', z, at - now + WINDOW * 2)
    redis.call('PEXPIRE', h, at - now + WINDOW * 2)
  end
  redis.call('HINCRBY', h, m, amount)
  redis.call('HINCRBY', h, 's', amount)
end

local function add(z, h, amount)
  add_at(z, h, amount, now)
end
