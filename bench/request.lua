-- request.lua — one fixed request, repeated by wrk; its shape comes from
-- the environment, so bench/run.sh needs no script per target:
--
--   BENCH_METHOD   GET (default), POST, PUT, ...
--   BENCH_TOKEN    an access token: sent as Authorization: Bearer ...
--   BENCH_BODY     a request body (JSON), sent with
--   BENCH_CONTENT_TYPE   (default application/json)
--
-- The URL (and so the path) is wrk's own argument.

local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "report.lua")

wrk.method = os.getenv("BENCH_METHOD") or "GET"

local token = os.getenv("BENCH_TOKEN")
if token and token ~= "" then
   wrk.headers["Authorization"] = "Bearer " .. token
end

local body = os.getenv("BENCH_BODY")
if body and body ~= "" then
   wrk.body = body
   wrk.headers["Content-Type"] = os.getenv("BENCH_CONTENT_TYPE") or "application/json"
end
