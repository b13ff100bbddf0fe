-- rotate.lua — requests built from the lines of a file, one after the
-- other, so that each request is for another user (a bench of one
-- user's token measures a warm cache, not a service).  From the
-- environment:
--
--   BENCH_FILE     lines of space-separated fields ($1, $2, ...)
--   BENCH_METHOD   GET (default), POST, ...
--   BENCH_PATH     the path, with fields: /api/conversations/$2
--   BENCH_AUTH     the field holding a bearer token (none when unset)
--   BENCH_BODY     a JSON body, with fields: {"email":"$1","password":"$2"}
--
-- Each wrk thread builds all its requests once, in init(), and then only
-- rotates through them, starting at its own offset, so the client spends
-- as little as it can per request.

local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "report.lua")

local next_id = 0
function setup(thread)
   thread:set("id", next_id)
   next_id = next_id + 1
end

local reqs, n, i = {}, 0, 0

local function fill(template, fields)
   return (template:gsub("%$(%d+)", function(k) return fields[tonumber(k)] or "" end))
end

function init(args)
   local file = assert(os.getenv("BENCH_FILE"), "BENCH_FILE is not set")
   local method = os.getenv("BENCH_METHOD") or "GET"
   local path = os.getenv("BENCH_PATH") or "/"
   local auth = tonumber(os.getenv("BENCH_AUTH") or "")
   local body = os.getenv("BENCH_BODY")
   for line in assert(io.open(file)):lines() do
      local fields = {}
      for w in line:gmatch("%S+") do fields[#fields + 1] = w end
      if #fields > 0 then
         local headers = {}
         if auth then headers["Authorization"] = "Bearer " .. fields[auth] end
         local b = nil
         if body and body ~= "" then
            b = fill(body, fields)
            headers["Content-Type"] = "application/json"
         end
         n = n + 1
         reqs[n] = wrk.format(method, fill(path, fields), headers, b)
      end
   end
   assert(n > 0, file .. " is empty")
   i = ((id or 0) * math.floor(n / 2 + 1)) % n
end

function request()
   i = i % n + 1
   return reqs[i]
end
