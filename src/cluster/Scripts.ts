/**
 * The Lua scripts the cluster runs in Redis: each is one step no other command interleaves with,
 * which is what keeps a filter set and its announcement, or a client's owner and the nodes' client
 * sets, consistent for every node. Key names built inside a script start from `nodePrefix`
 * (`<prefix>cluster:node:`), since which node's keys are touched is only known there.
 *
 * @module
 */

/** Changes a set or hash and announces it on a channel. KEYS[1]: the set or hash; ARGV: op, field, value, channel, event. */
export const CHANGE_AND_ANNOUNCE = `
local op = ARGV[1]
if op == 'sadd' then redis.call('SADD', KEYS[1], ARGV[2])
elseif op == 'srem' then redis.call('SREM', KEYS[1], ARGV[2])
elseif op == 'hset' then redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
elseif op == 'hdel' then redis.call('HDEL', KEYS[1], ARGV[2])
end
redis.call('PUBLISH', ARGV[4], ARGV[5])
return 1
`

/** Writes a node's whole filter set anew and announces it. KEYS[1]: the set; ARGV[1]: channel, ARGV[2]: event, ARGV[3..]: filters. */
export const RESET_FILTERS = `
redis.call('DEL', KEYS[1])
for i = 3, #ARGV do redis.call('SADD', KEYS[1], ARGV[i]) end
redis.call('PUBLISH', ARGV[1], ARGV[2])
return 1
`

/**
 * Appends an entry to a node's stream, or, once that node is gone (adopted), to its adopter's,
 * marked `from` the gone node. KEYS[1]: the node's stream; KEYS[2]: its gone marker; ARGV:
 * nodePrefix, node, field, value, "1" when the value is a binary batch, the heartbeat value of a
 * node that reads those. Returns {'ok', adopter or '', the length of the stream written to}, or
 * {'text', adopter, 0} without writing when a binary batch would go to an adopter that reads only
 * JSON (a node of before): the caller sends the JSON form.
 */
export const SEND = `
local target = KEYS[1]
local adopter = redis.call('GET', KEYS[2])
if adopter then
  if ARGV[5] == '1' and redis.call('GET', ARGV[1] .. adopter .. ':alive') ~= ARGV[6] then return {'text', adopter, 0} end
  target = ARGV[1] .. adopter .. ':stream'
  redis.call('XADD', target, '*', ARGV[3], ARGV[4], 'from', ARGV[2])
else
  redis.call('XADD', target, '*', ARGV[3], ARGV[4])
end
return {'ok', adopter or '', redis.call('XLEN', target)}
`

/**
 * Claims a client id. KEYS[1]: its owner key; ARGV: nodePrefix, claimant, client id, "1" to take
 * it whoever owns it. Takes it when nobody, the claimant, or a gone node owns it (or when told
 * to) and answers {'ok', previous}; else answers {'alive', owner} or {'dead', owner} (heartbeat
 * expired, not adopted yet) and changes nothing: that owner has to let it go, or be adopted, first.
 */
export const CLAIM = `
local prev = redis.call('GET', KEYS[1])
local function take()
  redis.call('SET', KEYS[1], ARGV[2])
  if prev then redis.call('SREM', ARGV[1] .. prev .. ':clients', ARGV[3]) end
  redis.call('SADD', ARGV[1] .. ARGV[2] .. ':clients', ARGV[3])
  return {'ok', prev or ''}
end
if (not prev) or prev == ARGV[2] or ARGV[4] == '1' then return take() end
if redis.call('EXISTS', ARGV[1] .. prev .. ':gone') == 1 then return take() end
if redis.call('EXISTS', ARGV[1] .. prev .. ':alive') == 0 then return {'dead', prev} end
return {'alive', prev}
`

/**
 * Moves a client id from one node to another if the first still owns it. KEYS[1]: its owner key;
 * ARGV: nodePrefix, client id, from, to. The id leaves `from`'s client set either way. Returns 1
 * when moved.
 */
export const TRANSFER = `
redis.call('SREM', ARGV[1] .. ARGV[3] .. ':clients', ARGV[2])
if redis.call('GET', KEYS[1]) ~= ARGV[3] then return 0 end
redis.call('SET', KEYS[1], ARGV[4])
redis.call('SADD', ARGV[1] .. ARGV[4] .. ':clients', ARGV[2])
return 1
`

/** Gives a client id up if the node still owns it. KEYS[1]: its owner key; ARGV: nodePrefix, node, client id. */
export const RELEASE = `
redis.call('SREM', ARGV[1] .. ARGV[2] .. ':clients', ARGV[3])
if redis.call('GET', KEYS[1]) == ARGV[2] then return redis.call('DEL', KEYS[1]) end
return 0
`
