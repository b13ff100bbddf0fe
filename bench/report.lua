-- report.lua — the summary every bench script ends with.
--
-- Loaded by the target scripts (request.lua, ...) with dofile.  wrk calls
-- done() once, after the run, in its main Lua state; it prints one line
-- that bench/run.sh reads:
--
--   BENCH requests=N seconds=S rps=R p50_ms=A p99_ms=B non2xx=X errors=E
--
-- wrk counts answers with a status of 400 or more as errors.status
-- (non2xx here); errors are socket errors: connect, read, write, timeout.

function done(summary, latency, requests)
   local secs = summary.duration / 1e6
   local e = summary.errors
   io.write(string.format(
      "BENCH requests=%d seconds=%.3f rps=%.1f p50_ms=%.3f p99_ms=%.3f non2xx=%d errors=%d\n",
      summary.requests, secs, summary.requests / secs,
      latency:percentile(50) / 1000, latency:percentile(99) / 1000,
      e.status, e.connect + e.read + e.write + e.timeout))
end
