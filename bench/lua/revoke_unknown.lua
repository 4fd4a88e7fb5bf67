-- POST /oauth2/revoke of a token the server never issued (answer: 200).
package.path = package.path .. ";" .. os.getenv("TW_LUA_DIR") .. "/?.lua"
local c = require("common")
local auth = os.getenv("TW_AUTH")
local n = 0
request = function()
  n = n + 1
  return c.post("/oauth2/revoke", auth, "token=twa_unknown_" .. n .. "_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx")
end
