-- wrk script used by benches/tiles.sh: each thread cycles through the
-- request paths listed one per line in the file named by TILES_PATHS from
-- the first, so every server is asked the same paths in the same order. TILES_PREFIX goes before each path (wrk sends a path
-- from request() as it is, without the URL's own path).

local paths = {}
local prefix = os.getenv("TILES_PREFIX") or ""
local next_index = 1

function init(args)
   local file = assert(io.open(os.getenv("TILES_PATHS"), "r"))
   for line in file:lines() do
      if line ~= "" then paths[#paths + 1] = prefix .. line end
   end
   file:close()
   assert(#paths > 0, "no paths in " .. os.getenv("TILES_PATHS"))
end

function request()
   local path = paths[next_index]
   next_index = next_index % #paths + 1
   return wrk.format("GET", path)
end
