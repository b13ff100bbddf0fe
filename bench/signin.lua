-- signin.lua — POST /api/auth/signin, cycling through accounts so that
-- none has many sign-ins in flight at once (the app holds a per-account
-- slot for each sign-in until its password checks out).  From the
-- environment:
--
--   BENCH_ACCOUNTS       how many accounts (1 .. N)
--   BENCH_EMAIL_FORMAT   their emails, e.g. bench%d@example.com
--   BENCH_PASSWORD       their (common) password

local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "report.lua")

local n = tonumber(os.getenv("BENCH_ACCOUNTS") or "1")
local fmt = os.getenv("BENCH_EMAIL_FORMAT") or "bench%d@example.com"
local password = os.getenv("BENCH_PASSWORD") or ""
local headers = { ["Content-Type"] = "application/json" }
local bodies = {}
for k = 1, n do
   bodies[k] = string.format('{"email":"%s","password":"%s"}',
      string.format(fmt, k), password)
end

local i = 0
function request()
   i = i % n + 1
   return wrk.format("POST", nil, headers, bodies[i])
end
