"""The Lua scripts behind RedisState: one per RouterState method, each one atomic step.

One hash per deployment (or virtual key) holds its state; its fields:

    cd   cooldown end (shared clock)        ho   "1": half-open (cooldown over, no success yet)
    pr   lease that holds the probe         err  last error
    cr   the error that set cd (its reason) ca   when that error came (shared clock)
    lat  latency EWMA, seconds              n    latency samples
    rc rl rs   RPM bucket: capacity, level, stamp        tc tl ts   the same for TPM
    i:<lease>  requests in flight taken under that lease

A list beside it holds the times of recent failures. The namespace's lease hash maps each
process's lease to when it ends, in Redis's own milliseconds (``TIME``): in-flight counts and
probes of a lease that ended (its process died) no longer count and are dropped.
Every number is written with ``%.17g``: Lua's own conversion keeps 14 digits, too few for
times near 1.7e9 s.
"""

from __future__ import annotations

__all__ = ["FAILURE", "LEASE", "RELEASE", "RESERVE", "SUCCESS", "VIEW"]

_PRELUDE = """
local changes = {}
local function num(v, default)
  if v == nil or v == false or v == '' then return default end
  return tonumber(v)
end
local function fmt(x) return string.format('%.17g', x) end
local function server_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function hash(key)
  local flat = redis.call('HGETALL', key)
  local h = {}
  for i = 1, #flat, 2 do h[flat[i]] = flat[i + 1] end
  return h
end
local function live_leases(key)
  local now_ms = server_ms()
  local flat = redis.call('HGETALL', key)
  local live = {}
  for i = 1, #flat, 2 do
    if tonumber(flat[i + 1]) > now_ms then live[flat[i]] = true end
  end
  return live, now_ms
end
local function put(h, field, value)
  h[field] = value
  if value == nil then changes[field] = false else changes[field] = value end
end
local function save(key, h, now, ttl_ms)
  local sets, dels = {}, {}
  for field, value in pairs(changes) do
    if value == false then
      dels[#dels + 1] = field
    else
      sets[#sets + 1] = field
      sets[#sets + 1] = value
    end
  end
  if #sets > 0 then redis.call('HSET', key, unpack(sets)) end
  if #dels > 0 then redis.call('HDEL', key, unpack(dels)) end
  local cd = num(h.cd, 0)
  if cd > now then ttl_ms = math.max(ttl_ms, math.ceil((cd - now) * 1000) + 60000) end
  redis.call('PEXPIRE', key, ttl_ms)
end
-- an ended cooldown turns half-open: one probe request, then healthy or cooled again
local function settle(h, now)
  local cd = num(h.cd, 0)
  if cd > 0 and now >= cd then
    put(h, 'cd', nil)
    put(h, 'cr', nil)
    put(h, 'ca', nil)
    put(h, 'ho', '1')
  end
end
local function in_flight(h, live)
  local n = 0
  for field, value in pairs(h) do
    if string.sub(field, 1, 2) == 'i:' and live[string.sub(field, 3)] then
      n = n + tonumber(value)
    end
  end
  return n
end
local function prune(h, live)
  for field, _ in pairs(h) do
    if string.sub(field, 1, 2) == 'i:' and not live[string.sub(field, 3)] then
      put(h, field, nil)
    end
  end
  if h.pr and not live[h.pr] then put(h, 'pr', nil) end
end
-- a token bucket refilled continuously over a minute
local function refill(h, p, now)
  local cap = num(h[p .. 'c'], nil)
  if cap == nil then return nil end
  local stamp = num(h[p .. 's'], now)
  local level = num(h[p .. 'l'], cap) + math.max(0, now - stamp) * cap / 60.0
  return {cap = cap, level = math.min(cap, level), stamp = math.max(stamp, now)}
end
local function keep(h, p, b)
  put(h, p .. 'c', fmt(b.cap))
  put(h, p .. 'l', fmt(b.level))
  put(h, p .. 's', fmt(b.stamp))
end
"""

VIEW = (
    _PRELUDE
    + """
-- KEYS: leases, entry...  ARGV: now
-- One string: a line per entry, its fields apart by tabs (one reply to parse, not 9 per entry).
local now = tonumber(ARGV[1])
local live = live_leases(KEYS[1])
local out = {}
for i = 2, #KEYS do
  local h = hash(KEYS[i])
  settle(h, now)
  local rpm, tpm = refill(h, 'r', now), refill(h, 't', now)
  out[#out + 1] = table.concat({
    h.cd or '', h.ho or '', (h.pr and live[h.pr]) and '1' or '', in_flight(h, live),
    h.lat or '', h.n or '', rpm and fmt(rpm.level) or '', tpm and fmt(tpm.level) or '',
    h.err and string.gsub(h.err, '%s', ' ') or '',
    h.cr and string.gsub(h.cr, '%s', ' ') or '', h.ca or ''
  }, '\\t')
end
return table.concat(out, '\\n')
"""
)

RESERVE = (
    _PRELUDE
    + """
-- KEYS: leases, entry  ARGV: now, lease, lease_ms, ttl_ms, rpm, tpm, max_parallel, tokens
local now, lease, lease_ms = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local live, now_ms = live_leases(KEYS[1])
redis.call('HSET', KEYS[1], lease, fmt(now_ms + lease_ms))
redis.call('PEXPIRE', KEYS[1], 2 * lease_ms)
live[lease] = true
local h = hash(KEYS[2])
settle(h, now)
prune(h, live)
local buckets = {}
for p, limit in pairs({r = num(ARGV[5], nil), t = num(ARGV[6], nil)}) do
  local b = refill(h, p, now)
  if b == nil then b = {cap = limit, level = limit, stamp = now} end
  if b.cap ~= limit then b.cap = limit; b.level = math.min(b.level, limit) end
  keep(h, p, b)
  buckets[p] = b
end
for _, p in ipairs({'r', 't'}) do
  if buckets[p] == nil and h[p .. 'c'] then
    put(h, p .. 'c', nil); put(h, p .. 'l', nil); put(h, p .. 's', nil)
  end
end
local function wait_for(b, amount)
  local missing = math.min(amount, b.cap) - b.level
  if missing <= 0 then return 0 end
  return missing * 60.0 / b.cap
end
local limit, tokens = num(ARGV[7], nil), tonumber(ARGV[8])
local cd = num(h.cd, 0)
local wait = nil
if now < cd then
  wait = fmt(cd - now)
elseif h.pr then
  wait = 'inf'
elseif limit and in_flight(h, live) >= limit then
  wait = 'inf'
else
  local w = 0
  if buckets.r then w = math.max(w, wait_for(buckets.r, 1)) end
  if buckets.t and tokens > 0 then w = math.max(w, wait_for(buckets.t, tokens)) end
  if w > 0 then wait = fmt(w) end
end
if wait == nil then
  if buckets.r then put(h, 'rl', fmt(buckets.r.level - 1)) end
  if buckets.t then put(h, 'tl', fmt(buckets.t.level - tokens)) end
  put(h, 'i:' .. lease, fmt(num(h['i:' .. lease], 0) + 1))
  if h.ho then put(h, 'pr', lease) end
  wait = '0'
end
save(KEYS[2], h, now, tonumber(ARGV[4]))
return wait
"""
)

RELEASE = (
    _PRELUDE
    + """
-- KEYS: leases, entry  ARGV: now, lease, token_correction, ttl_ms
local now, lease, correction = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local live = live_leases(KEYS[1])
local h = hash(KEYS[2])
settle(h, now)
prune(h, live)
local field = 'i:' .. lease
local n = num(h[field], 0) - 1
if n > 0 then put(h, field, fmt(n)) elseif h[field] then put(h, field, nil) end
if h.pr then put(h, 'pr', nil) end
local tpm = refill(h, 't', now)
if tpm and correction ~= 0 then
  tpm.level = tpm.level - correction  -- may go negative: usage beyond the estimate
  keep(h, 't', tpm)
end
save(KEYS[2], h, now, tonumber(ARGV[4]))
return 1
"""
)

SUCCESS = (
    _PRELUDE
    + """
-- KEYS: entry, failures  ARGV: now, latency_s, alpha, ttl_ms
local now, latency = tonumber(ARGV[1]), tonumber(ARGV[2])
local h = hash(KEYS[1])
settle(h, now)
put(h, 'ho', nil)
put(h, 'err', nil)
redis.call('DEL', KEYS[2])
local lat = num(h.lat, nil)
if lat == nil then lat = latency else lat = lat + tonumber(ARGV[3]) * (latency - lat) end
put(h, 'lat', fmt(lat))
put(h, 'n', fmt(num(h.n, 0) + 1))
save(KEYS[1], h, now, tonumber(ARGV[4]))
return 1
"""
)

FAILURE = (
    _PRELUDE
    + """
-- KEYS: entry, failures  ARGV: now, error, allowed_fails, window, cooldown, cool_for, ttl_ms
local now, window = tonumber(ARGV[1]), tonumber(ARGV[4])
local h = hash(KEYS[1])
settle(h, now)
put(h, 'err', ARGV[2])
redis.call('RPUSH', KEYS[2], fmt(now))
while true do
  local first = redis.call('LINDEX', KEYS[2], 0)
  if not first or tonumber(first) > now - window then break end
  redis.call('LPOP', KEYS[2])
end
local cool = num(ARGV[6], nil)
if cool == nil and (h.ho or redis.call('LLEN', KEYS[2]) >= tonumber(ARGV[3])) then
  cool = tonumber(ARGV[5])  -- a failed probe, or too many failures in the window
end
local result = ''
if cool ~= nil and cool > 0 then
  if now + cool >= num(h.cd, 0) then
    put(h, 'cd', fmt(now + cool))
    put(h, 'cr', ARGV[2])
    put(h, 'ca', fmt(now))
  end
  put(h, 'ho', nil)
  redis.call('DEL', KEYS[2])
  result = h.cd
else
  redis.call('PEXPIRE', KEYS[2], math.ceil(window * 1000) + 1000)
end
save(KEYS[1], h, now, tonumber(ARGV[7]))
return result
"""
)

LEASE = """
-- KEYS: leases  ARGV: lease_ms, lease...   Extend these leases; forget the ended ones.
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease_ms = tonumber(ARGV[1])
for i = 2, #ARGV do
  redis.call('HSET', KEYS[1], ARGV[i], string.format('%.17g', now_ms + lease_ms))
end
local flat = redis.call('HGETALL', KEYS[1])
for i = 1, #flat, 2 do
  if tonumber(flat[i + 1]) <= now_ms then redis.call('HDEL', KEYS[1], flat[i]) end
end
redis.call('PEXPIRE', KEYS[1], 2 * lease_ms)
return 1
"""
