-- wrk script used by benches/load.sh.
--
-- Always: done() prints one machine-readable line, starting with "BENCH",
-- with the throughput, latency percentiles in microseconds and error counts
-- (the same figures as wrk's --latency output, without rounding).
--
-- Pacing, when WRK_PACE_RATE is set in the environment: all wrk threads
-- together send about WRK_PACE_RATE requests per second (WRK_PACE_THREADS
-- must be wrk's -t). Each thread keeps a schedule of send slots, evenly
-- spaced, and a connection whose response has arrived waits (delay()) for
-- the next free slot. A target that falls behind the schedule does not get
-- the missed slots later (no catch-up burst), so the achieved rate is lower
-- and shows it. wrk's timers have millisecond resolution: requests leave in
-- small groups on millisecond ticks (about RATE/1000 per tick). Latency is
-- measured by wrk from the moment a request is written, so the waiting
-- before it is not counted.
--
-- delay() is only defined when pacing: its mere presence makes wrk go
-- through a timer for every request.

local pace_rate = tonumber(os.getenv("WRK_PACE_RATE") or "")
local pace_threads = tonumber(os.getenv("WRK_PACE_THREADS") or "1")

if pace_rate and pace_rate > 0 then
   local ffi = require("ffi")
   ffi.cdef[[
      typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
      int clock_gettime(int clk_id, bench_timespec *tp);
   ]]
   local CLOCK_MONOTONIC = 1
   local ts = ffi.new("bench_timespec")

   local function now_ms()
      ffi.C.clock_gettime(CLOCK_MONOTONIC, ts)
      return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
   end

   -- Milliseconds between two slots of one thread.
   local gap_ms = 1000 * pace_threads / pace_rate
   local next_slot = nil

   function init(args)
      -- Threads must not share a random sequence.
      local address = tonumber(tostring({}):match("0x(%x+)") or "0", 16)
      math.randomseed((os.time() + address) % 2147483647)
   end

   function delay()
      local now = now_ms()
      if next_slot == nil or next_slot < now then
         next_slot = now
      end
      local wait = next_slot - now
      next_slot = next_slot + gap_ms
      -- wrk truncates to whole milliseconds: round at random so that the
      -- mean send time stays on the slot.
      return math.floor(wait + math.random())
   end
end

-- The one-line BENCH summary the benchmark scripts parse, shared with the
-- other wrk scripts of this folder.
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "report.lua")
