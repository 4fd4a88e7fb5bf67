-- POST /oauth2/introspect of a random valid token from TW_TOKENS.
package.path = package.path .. ";" .. os.getenv("TW_LUA_DIR") .. "/?.lua"
local c = require("common")
local auth = os.getenv("TW_AUTH")
local tokens
init = function(args)
  tokens = c.read_lines(os.getenv("TW_TOKENS"))
  math.randomseed(os.time() + math.floor(os.clock() * 1000000))
end
request = function()
  return c.post("/oauth2/introspect", auth, "token=" .. tokens[math.random(#tokens)])
end
