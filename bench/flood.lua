-- flood.lua — rotate.lua's requests, with every answer counted by status:
-- the sign-in flood of `make bench`'s `flood` target.  done() prints the
-- usual BENCH line and one more:
--
--   FLOOD s2xx=N s401=N s429=N s503=N s5xx=N other=N
--
-- where s5xx counts the 5xx answers other than 503.

local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "rotate.lua")

local threads = {}
local base_setup = setup
function setup(thread)
   base_setup(thread)
   threads[#threads + 1] = thread
end

s2xx, s401, s429, s503, s5xx, other = 0, 0, 0, 0, 0, 0

function response(status, headers, body)
   if status < 300 then s2xx = s2xx + 1
   elseif status == 401 then s401 = s401 + 1
   elseif status == 429 then s429 = s429 + 1
   elseif status == 503 then s503 = s503 + 1
   elseif status >= 500 then s5xx = s5xx + 1
   else other = other + 1 end
end

local base_done = done
function done(summary, latency, requests)
   base_done(summary, latency, requests)
   local t = { s2xx = 0, s401 = 0, s429 = 0, s503 = 0, s5xx = 0, other = 0 }
   for _, thread in ipairs(threads) do
      for k in pairs(t) do t[k] = t[k] + (thread:get(k) or 0) end
   end
   io.write(string.format("FLOOD s2xx=%d s401=%d s429=%d s503=%d s5xx=%d other=%d\n",
      t.s2xx, t.s401, t.s429, t.s503, t.s5xx, t.other))
end
