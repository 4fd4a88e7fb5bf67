-- GET /notes of the example API (examples/protected-api) with one bearer token (TW_BEARER): the
-- same request with and without the tokenwarden-resource layer in front.
local bearer = os.getenv("TW_BEARER")
request = function()
  return wrk.format("GET", "/notes", { ["Authorization"] = "Bearer " .. bearer })
end
