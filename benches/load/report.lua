-- wrk's done(): one line "BENCH rps=... p50_us=... ..." that
-- benches/load.sh and benches/kpi_memory.sh parse. Loaded by the wrk
-- scripts of this folder with dofile.

function done(summary, latency, requests)
   local e = summary.errors
   local seconds = summary.duration / 1e6
   io.write(string.format(
      "BENCH rps=%.1f p50_us=%d p90_us=%d p99_us=%d max_us=%d requests=%d seconds=%.3f"
         .. " connect=%d read=%d write=%d status=%d timeout=%d\n",
      summary.requests / seconds,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
      summary.requests, seconds,
      e.connect, e.read, e.write, e.status, e.timeout))
end
