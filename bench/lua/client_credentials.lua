-- POST /oauth2/token grant_type=client_credentials (every issued token durable).
package.path = package.path .. ";" .. os.getenv("TW_LUA_DIR") .. "/?.lua"
local c = require("common")
local auth = os.getenv("TW_AUTH")
request = function()
  return c.post("/oauth2/token", auth, "grant_type=client_credentials&scope=read")
end
