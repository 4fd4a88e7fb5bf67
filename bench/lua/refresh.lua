-- POST /oauth2/token grant_type=refresh_token: chains of rotating refresh tokens. Each thread owns
-- a share of the chains; a response's new refresh token goes back into the pool, so every
-- connection always refreshes a current token (no grace replays, no reuse).
package.path = package.path .. ";" .. os.getenv("TW_LUA_DIR") .. "/?.lua"
local c = require("common")
local auth = os.getenv("TW_AUTH")
local counter = 1
setup = function(thread)
  thread:set("id", counter)
  counter = counter + 1
end
local pool, last
init = function(args)
  local all = c.read_lines(os.getenv("TW_TOKENS"))
  local step = tonumber(os.getenv("TW_THREADS"))
  pool = {}
  for k = id, #all, step do pool[#pool + 1] = all[k] end
end
request = function()
  local t = table.remove(pool)
  if t == nil then t = last end
  last = t
  return c.post("/oauth2/token", auth, "grant_type=refresh_token&refresh_token=" .. t)
end
response = function(status, headers, body)
  local t = body:match('"refresh_token":"(twr_[^"]+)"')
  if t then pool[#pool + 1] = t end
end
