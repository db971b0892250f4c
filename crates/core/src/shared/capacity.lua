-- One upstream's capacity, shared by every replica: slots in flight (leased),
-- its requests/min and tokens/min (sliding-window logs on Redis's clock), the
-- slots reserved for dedicated tenants, and the fair share of the shared
-- slots among the tenants active on any replica. Redis runs a script
-- atomically, so the check and the take are one step across replicas.
--
-- A tenant is active while it holds a shared slot, has a request waiting on
-- any replica, or ended one within the last second. Each active tenant is
-- guaranteed floor(shared / active) slots (at least 1): a tenant below its
-- share takes any free slot; one at or above it takes a free slot only if
-- enough stay free to cover every other active tenant's unused share.
--
-- The clock (`now`, `WINDOW`) and the window functions come from
-- `window.lua`, run before this.
--
-- KEYS: 1 slot leases (zset lease -> expiry), 2 lease -> "s|tenant" or
--       "r|tenant" (hash), 3 counts (hash: "s:<tenant>", "r:<tenant>",
--       "total" shared), 4 last end per tenant (hash, ms), 5 waiters (zset
--       waiter -> last seen ms), 6 waiter -> tenant (hash), 7 requests log
--       (zset), 8 requests amounts (hash), 9 tokens log, 10 tokens amounts,
--       11 waiters per tenant (hash: reading it costs the tenants, not the
--       waiters)
-- ARGV: 1 op ("acquire", "release", "cancel"), then
--   acquire: 2 tenant, 3 reserved slots of the tenant, 4 tokens, 5 lease id,
--            6 lease ms, 7 shared slots (-1: unlimited), 8 rpm (-1: none),
--            9 tpm (-1: none), 10 waiter id, 11 most waiters per tenant
--   release: 2 lease id, 3 tokens entry ("" if none), 4 tokens estimated,
--            5 tokens actual
--   cancel:  2 waiter id
-- acquire returns {status, reserved (1/0), tokens entry ms, retry ms}:
--   status 1 granted, 0 wait (the waiter is registered or refreshed), 2 the
--   tenant already has the most waiters.

local ACTIVE_FOR = 1000
local WAITER_TTL = 1000
local KEEP = 600000
local op = ARGV[1]

local function drop_count(kind, tenant)
  local n = redis.call('HINCRBY', KEYS[3], kind .. ':' .. tenant, -1)
  if n <= 0 then redis.call('HDEL', KEYS[3], kind .. ':' .. tenant) end
  if kind == 's' then
    if redis.call('HINCRBY', KEYS[3], 'total', -1) < 0 then redis.call('HSET', KEYS[3], 'total', 0) end
  end
end

-- Frees a slot (released, or its lease ran out); true if it was held.
local function free_slot(lease, ended)
  local v = redis.call('HGET', KEYS[2], lease)
  redis.call('ZREM', KEYS[1], lease)
  if not v then return false end
  redis.call('HDEL', KEYS[2], lease)
  local kind, tenant = string.sub(v, 1, 1), string.sub(v, 3)
  drop_count(kind, tenant)
  if kind == 's' and ended then redis.call('HSET', KEYS[4], tenant, now) end
  return true
end

local function drop_waiter(waiter)
  if redis.call('ZREM', KEYS[5], waiter) == 0 then return end
  local tenant = redis.call('HGET', KEYS[6], waiter)
  redis.call('HDEL', KEYS[6], waiter)
  if tenant and redis.call('HINCRBY', KEYS[11], tenant, -1) <= 0 then redis.call('HDEL', KEYS[11], tenant) end
end

local function keep()
  for i = 1, 11 do redis.call('PEXPIRE', KEYS[i], KEEP) end
end

if op == 'cancel' then
  drop_waiter(ARGV[2])
  return 1
end

if op == 'release' then
  if free_slot(ARGV[2], true) and ARGV[3] ~= '' then
    local cur = tonumber(redis.call('HGET', KEYS[10], ARGV[3]))
    if cur ~= nil then
      local new = math.max(cur + tonumber(ARGV[5]) - tonumber(ARGV[4]), 0)
      redis.call('HSET', KEYS[10], ARGV[3], new)
      redis.call('HINCRBY', KEYS[10], 's', new - cur)
    end
  end
  return 1
end

-- acquire. First what ran out: slots of replicas that died, waiters no
-- replica polls any more, tenants no longer active.
for _, lease in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)) do free_slot(lease, false) end
for _, w in ipairs(redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', now - WAITER_TTL)) do drop_waiter(w) end
local last = redis.call('HGETALL', KEYS[4])
for i = 1, #last, 2 do
  if tonumber(last[i + 1]) <= now - ACTIVE_FOR then redis.call('HDEL', KEYS[4], last[i]) end
end

local tenant = ARGV[2]
local reserved = tonumber(ARGV[3])
local tokens = tonumber(ARGV[4])
local lease = ARGV[5]
local shared = tonumber(ARGV[7])
local rpm = tonumber(ARGV[8])
local tpm = tonumber(ARGV[9])
local waiter = ARGV[10]

local function count(field) return tonumber(redis.call('HGET', KEYS[3], field)) or 0 end

local function shared_allowed()
  if shared < 0 then return true end
  local in_use = count('total')
  if in_use >= shared then return false end
  local active = {[tenant] = true}
  local counts = redis.call('HGETALL', KEYS[3])
  for i = 1, #counts, 2 do
    if string.sub(counts[i], 1, 2) == 's:' then active[string.sub(counts[i], 3)] = true end
  end
  for _, t2 in ipairs(redis.call('HKEYS', KEYS[11])) do active[t2] = true end
  local ended = redis.call('HKEYS', KEYS[4])
  for _, t2 in ipairs(ended) do active[t2] = true end
  local n = 0
  for _ in pairs(active) do n = n + 1 end
  local share = math.max(math.floor(shared / n), 1)
  local mine = count('s:' .. tenant)
  if mine < share then return true end
  local owed = 0
  for t2 in pairs(active) do
    if t2 ~= tenant then owed = owed + math.max(share - count('s:' .. t2), 0) end
  end
  return shared - in_use > owed
end

local function wait(retry)
  if redis.call('ZSCORE', KEYS[5], waiter) then
    redis.call('ZADD', KEYS[5], now, waiter)
  else
    if (tonumber(redis.call('HGET', KEYS[11], tenant)) or 0) >= tonumber(ARGV[11]) then return {2, 0, 0, 0} end
    redis.call('ZADD', KEYS[5], now, waiter)
    redis.call('HSET', KEYS[6], waiter, tenant)
    redis.call('HINCRBY', KEYS[11], tenant, 1)
  end
  keep()
  return {0, 0, 0, retry}
end

local kind
if reserved > 0 and count('r:' .. tenant) < reserved then
  kind = 'r'
elseif shared_allowed() then
  kind = 's'
else
  return wait(0)
end
-- The upstream's rate limits bind everyone, reserved slots included.
if rpm >= 0 then
  local total = prune(KEYS[7], KEYS[8])
  if total + 1 > rpm then return wait(retry_after(KEYS[7], KEYS[8], total, 1, rpm)) end
end
if tpm >= 0 then
  local total = prune(KEYS[9], KEYS[10])
  if total + tokens > tpm then return wait(retry_after(KEYS[9], KEYS[10], total, tokens, tpm)) end
end

drop_waiter(waiter)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[6]), lease)
redis.call('HSET', KEYS[2], lease, kind .. '|' .. tenant)
redis.call('HINCRBY', KEYS[3], kind .. ':' .. tenant, 1)
if kind == 's' then redis.call('HINCRBY', KEYS[3], 'total', 1) end
if rpm >= 0 then add(KEYS[7], KEYS[8], 1) end
local entry = 0
if tpm >= 0 and tokens > 0 then
  add(KEYS[9], KEYS[10], tokens)
  entry = now
end
keep()
return {1, kind == 'r' and 1 or 0, entry, 0}
