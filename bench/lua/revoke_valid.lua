-- POST /oauth2/revoke of valid tokens, each revoked once: thread k takes every N-th token.
package.path = package.path .. ";" .. os.getenv("TW_LUA_DIR") .. "/?.lua"
local c = require("common")
local auth = os.getenv("TW_AUTH")
local threads, counter = {}, 1
setup = function(thread)
  thread:set("id", counter)
  table.insert(threads, thread)
  counter = counter + 1
end
local tokens, i, step
init = function(args)
  tokens = c.read_lines(os.getenv("TW_TOKENS"))
  step = tonumber(os.getenv("TW_THREADS"))
  i = id
end
request = function()
  local t = tokens[i] or tokens[#tokens]
  i = i + step
  return c.post("/oauth2/revoke", auth, "token=" .. t .. "&token_type_hint=access_token")
end
