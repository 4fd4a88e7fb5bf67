-- The ceiling: the same kind of POST against the bare axum server.
package.path = package.path .. ";" .. os.getenv("TW_LUA_DIR") .. "/?.lua"
local c = require("common")
request = function()
  return c.post("/", "Basic YmVuY2g6c2VjcmV0", "token=twa_0000000000000000000000000000000000000000000&token_type_hint=access_token")
end
