-- POST /v3/kv/put of a fixed 256-byte value to keys <prefix>00000000 .. <prefix>(count-1), zero-padded to 8 digits.
-- Args (after `--`): <key count> <key prefix> <value, base64>.
-- Every request is built once in init(); request() only advances a per-thread counter, so wrk spends
-- its time on the wire rather than in Lua. Threads start at different offsets of the key space.
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "report.lua")

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

local function base64(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local q = {math.floor(n / 262144) % 64, math.floor(n / 4096) % 64, math.floor(n / 64) % 64, n % 64}
    out[#out + 1] = B64:sub(q[1] + 1, q[1] + 1) .. B64:sub(q[2] + 1, q[2] + 1)
      .. (b and B64:sub(q[3] + 1, q[3] + 1) or "=") .. (c and B64:sub(q[4] + 1, q[4] + 1) or "=")
  end
  return table.concat(out)
end

local next_id = 0
function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
end

local requests, count, i

function init(args)
  count = tonumber(args[1])
  local prefix, value = args[2], args[3]
  local headers = {["Content-Type"] = "application/json"}
  requests = {}
  for k = 0, count - 1 do
    local body = '{"key":"' .. base64(prefix .. string.format("%08d", k)) .. '","value":"' .. value .. '"}'
    requests[k + 1] = wrk.format("POST", nil, headers, body)
  end
  i = ((id or 0) * 7919) % count
end

function request()
  i = i % count + 1
  return requests[i]
end
