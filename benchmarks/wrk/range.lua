-- POST /v3/kv/range of one existing key, linearizable (etcd's default; serializable is not set).
-- Args (after `--`): <key, base64>. No request() is defined, so wrk builds the request once and reuses it.
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "report.lua")

function init(args)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.body = '{"key":"' .. args[1] .. '"}'
end
