"""The Lua scripts of :class:`~bayou.layers.redis.RedisChannelLayer`.

Each layer operation is one script call (``EVALSHA``; redis-py reloads a script that a
restarted server forgot). Key names are built from ``prefix`` (see ``docs/topics/redis-design.md``):

``<prefix>:ch:<name>``       list: queue of a plain (non-``!``) channel
``<prefix>:inbox:<pid>``     list: the inbox of one layer instance (process)
``<prefix>:depth:<pid>``     hash: process-specific channel -> direct messages not yet received
``<prefix>:proc:<pid>``      string with a TTL: the process is alive (refreshed by its receive loop)
``<prefix>:wake:<pid>``      list: wakes the process's blocking receive loop
``<prefix>:group:<group>``   sorted set: members (``@<pid>`` = that process's local members,
                              or a channel name) -> join time
``<prefix>:gcap:<group>``    hash: plain member -> its capacity
"""

from __future__ import annotations

__all__ = [
    "DECREMENT",
    "GROUP_ADD",
    "GROUP_DISCARD",
    "GROUP_MEMBERS",
    "GROUP_PUSH",
    "GROUP_SEND",
    "PUB_GROUP_SEND",
    "PUB_SEND_LOCAL",
    "SEND_LOCAL",
    "SEND_PLAIN",
]

# Drops expired entries at the head of the list KEYS[1]; ARGV[1] = now in ms.
_TRIM = """
local function trim(key, now)
  local n = 0
  while true do
    local head = redis.call('LINDEX', key, 0)
    if not head then break end
    if tonumber(string.sub(head, 1, 16)) > now then break end
    redis.call('LPOP', key)
    n = n + 1
  end
  return n
end
"""

#: KEYS: channel list. ARGV: now_ms, capacity, entry, ttl_ms.
#: Returns {1 if queued else 0 (full), expired entries removed}.
SEND_PLAIN = (
    _TRIM
    + """
local expired = trim(KEYS[1], tonumber(ARGV[1]))
if redis.call('LLEN', KEYS[1]) >= tonumber(ARGV[2]) then
  return {0, expired}
end
redis.call('RPUSH', KEYS[1], ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return {1, expired}
"""
)

#: KEYS: inbox, depth hash, owner's liveness key. ARGV: channel, capacity, entry, ttl_ms.
#: Returns 1 (queued) or 0 (full). While the owner's liveness key is missing (it crashed,
#: or Redis restarted and its receive loop has not reconnected yet) the message is still
#: queued, but the inbox's TTL is not extended: a dead process's inbox expires at most
#: ``ttl`` after the first message it did not collect, however often others send to it.
SEND_LOCAL = """
local depth = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
if depth >= tonumber(ARGV[2]) then
  return 0
end
redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
redis.call('RPUSH', KEYS[1], ARGV[3])
if redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('PEXPIRE', KEYS[2], ARGV[4])
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
else
  if redis.call('PTTL', KEYS[2]) < 0 then redis.call('PEXPIRE', KEYS[2], ARGV[4]) end
  if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[4]) end
end
return 1
"""

#: KEYS: depth hash. ARGV: channel, count, channel, count, ...
DECREMENT = """
for i = 1, #ARGV, 2 do
  local v = redis.call('HINCRBY', KEYS[1], ARGV[i], -tonumber(ARGV[i + 1]))
  if v <= 0 then
    redis.call('HDEL', KEYS[1], ARGV[i])
  end
end
return 1
"""

#: KEYS: group zset, group capacity hash[, process key]. ARGV: member, now, ttl_s,
#: capacity ('' for process members)[, process ttl_ms].
GROUP_ADD = """
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[4])
  redis.call('EXPIRE', KEYS[2], ARGV[3])
end
if KEYS[3] then
  redis.call('SET', KEYS[3], '1', 'PX', ARGV[5])
end
return 1
"""

#: KEYS: group zset, group capacity hash. ARGV: member.
GROUP_DISCARD = """
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return 1
"""

# Removes members that joined before ARGV[2] (seconds); returns how many.
_EXPIRE_MEMBERS = """
local function expire_members(zkey, ckey, cutoff)
  local stale = redis.call('ZRANGEBYSCORE', zkey, '-inf', '(' .. cutoff)
  for i = 1, #stale do
    redis.call('ZREM', zkey, stale[i])
    redis.call('HDEL', ckey, stale[i])
  end
  return #stale
end
"""

# Delivers one group message to members on this server. Every member is either
# '@<pid>' (one push to that process's inbox, whatever its number of local members),
# a process-specific channel of some process, or a plain channel (checked against its
# capacity). Returns {processes, plain channels, dead processes (list), full channels (list),
# expired messages trimmed}.
_DELIVER = (
    _TRIM
    + """
local function deliver(members, caps, ckey, prefix, header, group, payload, ttl, default_cap, now,
                       publish_inbox)
  local gentry = nil
  local processes, plain, expired = 0, 0, 0
  local dead, full = {}, {}
  for i = 1, #members do
    local m = members[i]
    if string.byte(m, 1) == 64 then
      local pid = string.sub(m, 2)
      if redis.call('EXISTS', prefix .. ':proc:' .. pid) == 1 then
        if not gentry then
          gentry = header .. 'g' .. group .. '\\n' .. payload
        end
        local inbox = prefix .. ':inbox:' .. pid
        redis.call('RPUSH', inbox, gentry)
        redis.call('PEXPIRE', inbox, ttl)
        processes = processes + 1
      else
        dead[#dead + 1] = m
      end
    else
      local bang = string.find(m, '!', 1, true)
      if bang and bang > 33 then
        local inbox = prefix .. ':inbox:' .. string.sub(m, bang - 32, bang - 1)
        local entry = header .. 'd' .. m .. '\\n' .. payload
        if publish_inbox then
          redis.call('PUBLISH', inbox, entry)
        else
          redis.call('RPUSH', inbox, entry)
          redis.call('PEXPIRE', inbox, ttl)
        end
        plain = plain + 1
      else
        local key = prefix .. ':ch:' .. m
        expired = expired + trim(key, now)
        local cap = caps[i]
        if cap == nil and ckey then
          cap = redis.call('HGET', ckey, m)
        end
        cap = tonumber(cap or default_cap) or tonumber(default_cap)
        if redis.call('LLEN', key) >= cap then
          full[#full + 1] = m
        else
          redis.call('RPUSH', key, header .. 'c' .. m .. '\\n' .. payload)
          redis.call('PEXPIRE', key, ttl)
          plain = plain + 1
        end
      end
    end
  end
  return {processes, plain, dead, full, expired}
end
"""
)

#: Single-server group_send: one call does everything.
#: KEYS: group zset, group capacity hash. ARGV: cutoff_s, now_ms, deadline16, group,
#: payload, ttl_ms, prefix, default capacity.
#: Returns {processes, plain, dead, full, expired, expired members}.
GROUP_SEND = (
    _EXPIRE_MEMBERS
    + _DELIVER
    + """
local stale = expire_members(KEYS[1], KEYS[2], ARGV[1])
local members = redis.call('ZRANGE', KEYS[1], 0, -1)
local ckey = nil
if redis.call('EXISTS', KEYS[2]) == 1 then
  ckey = KEYS[2]
end
local result = deliver(members, {}, ckey, ARGV[7], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[8],
  tonumber(ARGV[2]), false)
for i = 1, #result[3] do
  redis.call('ZREM', KEYS[1], result[3][i])
end
result[3] = #result[3]
result[6] = stale
return result
"""
)

#: Sharded group_send, step 1 on the group's server: expire members and list them.
#: KEYS: group zset, capacity hash. ARGV: cutoff_s. Returns {expired members, members, caps}.
GROUP_MEMBERS = (
    _EXPIRE_MEMBERS
    + """
local stale = expire_members(KEYS[1], KEYS[2], ARGV[1])
local members = redis.call('ZRANGE', KEYS[1], 0, -1)
local caps = {}
for i = 1, #members do
  caps[i] = redis.call('HGET', KEYS[2], members[i]) or ''
end
return {stale, members, caps}
"""
)

#: Sharded group_send, step 2 on each server holding member queues.
#: ARGV: now_ms, deadline16, group, payload, ttl_ms, prefix, default capacity, n,
#: then n members, then n capacities ('' = default), then '1' to PUBLISH to inboxes.
#: Returns {processes, plain, dead (list), full (list), expired}.
GROUP_PUSH = (
    _DELIVER
    + """
local n = tonumber(ARGV[8])
local members, caps = {}, {}
for i = 1, n do
  members[i] = ARGV[8 + i]
  local cap = ARGV[8 + n + i]
  if cap ~= '' then caps[i] = cap end
end
return deliver(members, caps, nil, ARGV[6], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[7],
  tonumber(ARGV[1]), ARGV[9 + 2 * n] == '1')
"""
)

#: Pub/sub layer, direct send to a process-specific channel.
#: KEYS: depth hash. ARGV: channel, capacity, entry, ttl_ms, pub/sub channel.
#: Returns 1 (published), 0 (full) or 2 (no process subscribed: nobody can receive it).
PUB_SEND_LOCAL = """
local depth = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if depth >= tonumber(ARGV[2]) then
  return 0
end
if redis.call('PUBLISH', ARGV[5], ARGV[3]) == 0 then
  return 2
end
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
"""

#: Pub/sub layer, single-server group_send: one PUBLISH reaches every process with local
#: members (Redis fans out), then plain member channels are written as in GROUP_SEND.
#: KEYS and ARGV as GROUP_SEND, plus ARGV[9] = the group's pub/sub channel.
#: Returns as GROUP_SEND, with result[1] = processes that received the publication.
PUB_GROUP_SEND = (
    _EXPIRE_MEMBERS
    + _DELIVER
    + """
local listeners = redis.call('PUBLISH', ARGV[9], ARGV[3] .. 'g' .. ARGV[4] .. '\\n' .. ARGV[5])
local stale = expire_members(KEYS[1], KEYS[2], ARGV[1])
local members = redis.call('ZRANGE', KEYS[1], 0, -1)
local ckey = nil
if redis.call('EXISTS', KEYS[2]) == 1 then
  ckey = KEYS[2]
end
local result = deliver(members, {}, ckey, ARGV[7], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[8],
  tonumber(ARGV[2]), true)
result[1] = listeners
result[3] = #result[3]
result[6] = stale
return result
"""
)
