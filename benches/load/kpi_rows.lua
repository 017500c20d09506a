-- wrk script used by benches/kpi_memory.sh: every request is one KPI row
-- with values that keep changing.
--
-- Each request POSTs a single-row JSON body with 10 drift features (6
-- numeric, 4 categorical) and sends 2 protected attributes as
-- x-govgate-attr-* headers. Values are drawn at random per request:
--
--   sex       3 values
--   region    KPI_REGIONS values (default 80, above max_groups = 50, so
--             the group cap is exercised)
--   age, income, amount, duration, rate, balance
--             numeric; amount and rate drift slowly over the run, so the
--             window's bins keep moving against the reference
--   purpose   10 values, job 4 values
--   merchant  a category whose number of distinct values grows with the
--             requests sent (10 + 1 per 50 requests of a thread, up to
--             KPI_MERCHANTS, default 1000)
--   device    a new value on every request (unbounded cardinality)
--
-- done() prints one machine-readable line starting with "BENCH", as
-- benches/load/wrk.lua does.

local regions = tonumber(os.getenv("KPI_REGIONS") or "") or 80
local merchants = tonumber(os.getenv("KPI_MERCHANTS") or "") or 1000

local next_thread = 1

function setup(thread)
   thread:set("thread_no", next_thread)
   next_thread = next_thread + 1
end

local sent = 0
local sexes = { "female", "male", "diverse" }
local purposes = { "car", "furniture", "radio_tv", "appliances", "repairs",
                   "education", "vacation", "retraining", "business", "other" }
local jobs = { "unskilled", "skilled", "management", "unemployed" }

function init(args)
   -- Threads must not share a random sequence.
   local address = tonumber(tostring({}):match("0x(%x+)") or "0", 16)
   math.randomseed((os.time() + address) % 2147483647)
end

-- Roughly normal: the sum of 4 uniforms, centred, scaled.
local function normal(mean, sd)
   local s = math.random() + math.random() + math.random() + math.random() - 2
   return mean + sd * s * 1.732
end

function request()
   sent = sent + 1
   -- 0 at the start, 1 after 200 000 requests of this thread.
   local shift = math.min(1, sent / 200000)
   local known_merchants = math.min(merchants, 10 + math.floor(sent / 50))
   local body = string.format(
      '{"age":%d,"income":%.2f,"amount":%.2f,"duration":%d,"rate":%.4f,"balance":%.2f,'
         .. '"purpose":"%s","job":"%s","merchant":"m%d","device":"t%d-%d"}',
      math.random(18, 80),
      math.exp(normal(10.5, 0.5)),
      math.max(100, normal(3000 + 2000 * shift, 1500)),
      math.random(4, 72),
      math.random() * (0.05 + 0.1 * shift),
      normal(0, 5000),
      purposes[math.random(#purposes)],
      jobs[math.random(#jobs)],
      math.random(known_merchants),
      thread_no or 0, sent)
   local headers = {
      ["Content-Type"] = "application/json",
      ["x-govgate-attr-sex"] = sexes[math.random(#sexes)],
      ["x-govgate-attr-region"] = "r" .. math.random(regions),
   }
   return wrk.format("POST", nil, headers, body)
end

-- The one-line BENCH summary the benchmark scripts parse, shared with the
-- other wrk scripts of this folder.
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "report.lua")
