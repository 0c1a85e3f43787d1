"""The Lua scripts behind engine.limiter_redis. Each runs atomically inside Redis, on Redis' clock
(``TIME``), so every worker sees one timeline and no check can race with another's count.

Per bucket (one rule applied to one subject) there are four keys, ``<bucket>`` plus suffixes:
- ``<bucket>``      ZSET, the sliding-window log: one member per admitted request, scored by its
                    admission time in ms. Admit at ``now`` only if fewer than ``limit`` members have
                    a score in (now - window, now].
- ``<bucket>:q``    ZSET, the waiting line: member ``tenant\\tid``, scored by its turn (below).
- ``<bucket>:qx``   ZSET, the same members scored by when their registration lapses (a worker that
                    died stops blocking others after its wait plus a grace period).
- ``<bucket>:qt``   HASH, tenant -> how many of its requests are in the line.

Turn order (the ``:q`` score, smaller first) is ``-priority * PRIORITY_SPAN + arrival_ms +
backlog * slot_ms`` where ``backlog`` is how many requests of the same tenant were already
waiting when it arrived and ``slot_ms = window / limit``. So a higher priority always goes first;
within one priority the line is fair between tenants (start-time fair queuing): a tenant with 10,000
waiting requests spreads them over 10,000 future slots, and another tenant's single request lands
near the front instead of behind all of them.

A request is admitted when, in every bucket, the requests ahead of it in the line are fewer than
the free slots. Otherwise it learns the wait until *its* slot frees (the log entry whose expiry
makes room for it and everyone ahead), so waiters wake one by one instead of as a herd.

Two more keys per subject come from response headers (``observe``):
- pause ``ratelimit:pause:...``  a string, the epoch ms until which nobody may send (Retry-After).
- cap   ``ratelimit:cap:...``    a HASH {rem, reset, limit, win, synthetic}: what the API says is
  left until ``reset``; every admission takes one from ``rem``; at ``rem`` <= 0 requests wait for
  the reset. When the reset passes and the API's ``limit`` is known, a fresh budget of ``limit`` is
  assumed (so a crowd of waiters cannot stampede past the API's quota) until a newer header says
  otherwise.
"""

from __future__ import annotations

__all__ = ["ACQUIRE", "CANCEL", "KEYS_PER_BUCKET", "OBSERVE", "PRIORITY_SPAN"]

KEYS_PER_BUCKET = 4
# Priority weight in the turn score, in ms (~317 years): any priority step beats any arrival time.
# Priorities are clamped to +-400 so scores stay exact integers in a double (< 2**53).
PRIORITY_SPAN = 10**13

_PRELUDE = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function fmt(x) return string.format('%.0f', x) end
local function drop_waiter(q, qx, qt, member)
  redis.call('ZREM', qx, member)
  if redis.call('ZREM', q, member) == 1 then
    local tenant = string.match(member, '^(.-)\\t')
    if tenant and redis.call('HINCRBY', qt, tenant, -1) <= 0 then redis.call('HDEL', qt, tenant) end
  end
end
"""

# KEYS: pause, cap, then KEYS_PER_BUCKET per bucket (log, q, qx, qt).
# ARGV: id, tenant, priority, arrival_ms (0 = new), grace_ms, count, then per bucket: limit,
# window_ms. ``count`` is 1 for one request; ``-k`` asks for up to k slots at once (a worker's
# short lease, see limiter_redis): as many as fit without anyone waiting ahead are admitted and
# nobody is put in line. Returns {admitted, wait_ms, arrival_ms, then per bucket: remaining,
# reset_ms}.
ACQUIRE = (
    _PRELUDE
    + """
local now = now_ms()
local id, tenant, prio = ARGV[1], ARGV[2], tonumber(ARGV[3])
local arrival = tonumber(ARGV[4])
if arrival == 0 then arrival = now end
local grace = tonumber(ARGV[5])
local want = tonumber(ARGV[6])
local batch = want < 0
if batch then want = -want end
local member = tenant .. '\\t' .. id
local nb = (#KEYS - 2) / 4
local wait = 0

local pause_until = tonumber(redis.call('GET', KEYS[1]) or '0')
if pause_until > now then wait = pause_until - now end

local cap = redis.call('HMGET', KEYS[2], 'rem', 'reset', 'limit', 'win')
local cap_rem, cap_reset = tonumber(cap[1]), tonumber(cap[2])
local cap_limit, cap_win = tonumber(cap[3]), tonumber(cap[4])
if cap_reset and cap_reset <= now and cap_limit and cap_limit > 0 then
  -- the API's window turned over: assume its full quota until a newer header says otherwise
  local win = cap_win or 60000
  local reset = cap_reset + win * math.max(1, math.ceil((now - cap_reset + 1) / win))
  redis.call('HSET', KEYS[2], 'rem', cap_limit, 'reset', reset, 'synthetic', 1)
  redis.call('PEXPIRE', KEYS[2], reset - now + 3600000)
  cap_rem, cap_reset = cap_limit, reset
end
local capped = cap_rem ~= nil and cap_reset ~= nil and cap_reset > now
if capped and cap_rem <= 0 then wait = math.max(wait, cap_reset - now) end

local scores, known, counts = {}, {}, {}
local fit = want
if wait > 0 then fit = 0 end
if capped then fit = math.min(fit, cap_rem) end
for i = 1, nb do
  local b = 2 + (i - 1) * 4
  local log, q, qx, qt = KEYS[b + 1], KEYS[b + 2], KEYS[b + 3], KEYS[b + 4]
  local limit, win = tonumber(ARGV[5 + i * 2]), tonumber(ARGV[6 + i * 2])
  for _, dead in ipairs(redis.call('ZRANGEBYSCORE', qx, '-inf', now)) do drop_waiter(q, qx, qt, dead) end
  redis.call('ZREMRANGEBYSCORE', log, '-inf', now - win)
  local count = redis.call('ZCARD', log)
  counts[i] = count
  local score = tonumber(redis.call('ZSCORE', q, member))
  known[i] = score ~= nil
  if not score then
    local backlog = tonumber(redis.call('HGET', qt, tenant) or '0')
    score = -prio * """
    + str(PRIORITY_SPAN)
    + """ + arrival + backlog * math.floor(win / limit)
  end
  scores[i] = score
  local ahead = redis.call('ZCOUNT', q, '-inf', '(' .. fmt(score))
  local free = limit - count
  fit = math.min(fit, free - ahead)
  if ahead >= free then
    local need = ahead + 1 - free
    local w = win
    if need <= count then
      local entry = redis.call('ZRANGE', log, need - 1, need - 1, 'WITHSCORES')
      w = tonumber(entry[2]) + win - now
    end
    wait = math.max(wait, w, 1)
  end
end

if batch then
  if fit < 1 then return {0, fmt(math.max(wait, 1)), fmt(arrival)} end
  want = fit
elseif wait > 0 then
  for i = 1, nb do
    local b = 2 + (i - 1) * 4
    local q, qx, qt = KEYS[b + 2], KEYS[b + 3], KEYS[b + 4]
    local win = tonumber(ARGV[6 + i * 2])
    if not known[i] then
      redis.call('ZADD', q, fmt(scores[i]), member)
      redis.call('HINCRBY', qt, tenant, 1)
    end
    redis.call('ZADD', qx, fmt(now + wait + grace), member)
    local ttl = wait + grace + win
    for _, k in ipairs({q, qx, qt}) do
      if redis.call('PTTL', k) < ttl then redis.call('PEXPIRE', k, ttl) end
    end
  end
  return {0, fmt(wait), fmt(arrival)}
end

local out = {want, 0, fmt(arrival)}
for i = 1, nb do
  local b = 2 + (i - 1) * 4
  local log, q, qx, qt = KEYS[b + 1], KEYS[b + 2], KEYS[b + 3], KEYS[b + 4]
  local limit, win = tonumber(ARGV[5 + i * 2]), tonumber(ARGV[6 + i * 2])
  for j = 1, want do redis.call('ZADD', log, now, id .. ':' .. i .. ':' .. j) end
  redis.call('PEXPIRE', log, win)
  if known[i] then drop_waiter(q, qx, qt, member) end
  local oldest = redis.call('ZRANGE', log, 0, 0, 'WITHSCORES')
  out[#out + 1] = limit - counts[i] - want
  out[#out + 1] = fmt(tonumber(oldest[2]) + win)
end
if capped then redis.call('HINCRBY', KEYS[2], 'rem', -want) end
return out
"""
)

# KEYS: per bucket (log, q, qx, qt). ARGV: id, tenant. Leaves the waiting lines.
CANCEL = (
    _PRELUDE
    + """
local member = ARGV[2] .. '\\t' .. ARGV[1]
for b = 0, #KEYS / 4 - 1 do
  drop_waiter(KEYS[b * 4 + 2], KEYS[b * 4 + 3], KEYS[b * 4 + 4], member)
end
return 1
"""
)

# KEYS: pause, cap. ARGV: pause_ms (0 = none), remaining (-1 = none), reset_after_ms (-1 = none),
# limit (-1 = none), window_ms (-1 = none). Only ever tightens within one API window.
OBSERVE = (
    _PRELUDE
    + """
local now = now_ms()
local pause_ms = tonumber(ARGV[1])
local rem, reset_after = tonumber(ARGV[2]), tonumber(ARGV[3])
local limit, win = tonumber(ARGV[4]), tonumber(ARGV[5])
if pause_ms > 0 then
  local untl = now + pause_ms
  if untl > tonumber(redis.call('GET', KEYS[1]) or '0') then
    redis.call('SET', KEYS[1], fmt(untl), 'PX', pause_ms)
  end
end
if rem >= 0 and reset_after >= 0 then
  local reset = now + reset_after
  local cur = redis.call('HMGET', KEYS[2], 'rem', 'reset', 'synthetic')
  local cur_rem, cur_reset = tonumber(cur[1]), tonumber(cur[2])
  local same = cur_reset ~= nil and cur[3] ~= '1' and math.abs(cur_reset - reset) < 1500
  if same then
    if rem < cur_rem then redis.call('HSET', KEYS[2], 'rem', rem) end
  elseif cur_reset == nil or cur[3] == '1' or reset > cur_reset or cur_reset <= now then
    redis.call('HSET', KEYS[2], 'rem', rem, 'reset', fmt(reset), 'synthetic', 0)
  end
  if limit >= 0 then redis.call('HSET', KEYS[2], 'limit', limit) end
  if win > 0 then redis.call('HSET', KEYS[2], 'win', win) end
  redis.call('PEXPIRE', KEYS[2], reset_after + 3600000)
end
return 1
"""
)
