-- A slice of a tenant's requests/min and tokens/min leased to one replica,
-- which then admits up to that many requests and tokens by itself until the
-- slice's end, `now + ARGV[5]` (see `slices.rs`). The slice is added to the
-- sliding-window logs at its end, not at `now`: a request the replica admits
-- from it at any moment up to the end is then inside every window the log
-- counts it in, so no 60-second window admits more than the limit across
-- replicas (the proof is in `slices.rs`). Time is Redis's clock
-- (`window.lua`, run before this).
--
-- KEYS: 1 requests log (zset), 2 requests amounts (hash), 3 tokens log,
--       4 tokens amounts, 5 the slice's open marker (deleted by its close)
-- ARGV: 1 requests/min, 2 tokens/min, 3 requests in the slice, 4 tokens in
--       the slice, 5 the slice's length (ms)
-- Returns {status, entry_ms, remaining_requests, reset_requests_ms,
--          remaining_tokens, reset_tokens_ms}
-- status: 0 leased, 1 the whole slice does not fit (nothing taken)

local rpm = tonumber(ARGV[1])
local tpm = tonumber(ARGV[2])
local k = tonumber(ARGV[3])
local m = tonumber(ARGV[4])
local at = now + tonumber(ARGV[5])

local used_rq = prune(KEYS[1], KEYS[2])
local used_tok = prune(KEYS[3], KEYS[4])
if used_rq + k > rpm or used_tok + m > tpm then
  return {1, 0, math.max(rpm - used_rq, 0), reset_in(KEYS[1]), math.max(tpm - used_tok, 0), reset_in(KEYS[3])}
end
add_at(KEYS[1], KEYS[2], k, at)
if m > 0 then add_at(KEYS[3], KEYS[4], m, at) end
redis.call('SET', KEYS[5], 1, 'PX', 600000)
return {0, at, rpm - used_rq - k, reset_in(KEYS[1]), tpm - used_tok - m, reset_in(KEYS[3])}
