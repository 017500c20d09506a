-- wrk script used by benches/tiles.sh: each thread cycles through the
-- request paths listed one per line in the file named by TILES_PATHS, each
-- thread from its own offset, so every server is asked the same paths in
-- the same order.

local paths = {}
local next_index = 1

function init(args)
   local file = assert(io.open(os.getenv("TILES_PATHS"), "r"))
   for line in file:lines() do
      if line ~= "" then paths[#paths + 1] = line end
   end
   file:close()
   assert(#paths > 0, "no paths in " .. os.getenv("TILES_PATHS"))
   local thread = tonumber(os.getenv("TILES_THREAD_OFFSET") or "0")
   next_index = (thread % #paths) + 1
end

function request()
   local path = paths[next_index]
   next_index = next_index % #paths + 1
   return wrk.format("GET", path)
end
