-- webhook.lua — POST /api/payments/webhook, each request one line of the
-- file BENCH_EVENTS ("<Stripe-Signature>\t<body>", made by webhook.pl).
-- wrk thread k of BENCH_WRK_THREADS sends lines k, k + n, k + 2n, ... in
-- order, so the two copies of a duplicate may be in flight at once; a
-- thread that runs out starts its share again (all duplicates then).

local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "report.lua")

local next_id = 0
function setup(thread)
   thread:set("id", next_id)
   next_id = next_id + 1
end

local reqs, pos = {}, 0
function init(args)
   local n = tonumber(os.getenv("BENCH_WRK_THREADS") or "1")
   local i = 0
   for line in io.lines(os.getenv("BENCH_EVENTS")) do
      if i % n == id then
         local sig, body = line:match("^([^\t]*)\t(.*)$")
         reqs[#reqs + 1] = wrk.format("POST", nil, {
            ["Content-Type"] = "application/json",
            ["Stripe-Signature"] = sig }, body)
      end
      i = i + 1
   end
end

function request()
   pos = pos % #reqs + 1
   return reqs[pos]
end
