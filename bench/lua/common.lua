-- Shared by the scenario scripts: load a token file, form-POST helpers.
local M = {}

function M.read_lines(path)
  local t = {}
  for line in io.lines(path) do
    if #line > 0 then t[#t + 1] = line end
  end
  return t
end

function M.post(path, auth, body)
  local headers = { ["Content-Type"] = "application/x-www-form-urlencoded" }
  if auth and #auth > 0 then headers["Authorization"] = auth end
  return wrk.format("POST", path, headers, body)
end

return M
