-- wrk script of the epro benchmark: POST /api/collection/submit with a
-- PHQ-9 answer set, a unique patientId and a unique Idempotency-Key on
-- every request, and a count of 2xx replies per thread.
--
-- Arguments (after `--` on wrk's command line):
--   1. run tag: 8 hex digits, different for every wrk run against the same
--      database, so no two runs send the same submission id;
--   2. completedAt: an RFC 3339 time with offset in the recent past.
--
-- done() prints one line starting with BENCH_RESULT that bench/run parses.

local threads = {}

function setup(thread)
   thread:set("thread_number", #threads + 1)
   table.insert(threads, thread)
end

-- Each thread runs its own Lua state, so the values below are per thread.
-- acknowledged is global because done() reads it with thread:get().
local counter = 0
acknowledged = 0
local run_tag
local headers
local body_format

function init(args)
   run_tag = args[1] or "00000000"
   local completed_at = args[2] or "2026-12-04T20:15:00+08:00"

   headers = { ["Content-Type"] = "application/json" }

   -- formContent is a JSON string, so its quotes are escaped. The answers
   -- are the PHQ-9's LOINC codes: LA6568-5=0, LA6569-3=1, LA6570-1=2,
   -- LA6571-9=3 (total 7).
   local form_content = '{\\"/44250-9\\":\\"LA6568-5\\",\\"/44255-8\\":\\"LA6569-3\\",'
      .. '\\"/44259-0\\":\\"LA6570-1\\",\\"/44254-1\\":\\"LA6571-9\\",'
      .. '\\"/44251-7\\":\\"LA6568-5\\",\\"/44258-2\\":\\"LA6568-5\\",'
      .. '\\"/44252-5\\":\\"LA6569-3\\",\\"/44253-3\\":\\"LA6568-5\\",'
      .. '\\"/44260-8\\":\\"LA6568-5\\",\\"completedAt\\":\\"' .. completed_at .. '\\"}'
   body_format = '{"patientId":"P-%s-%d-%d","trialId":"demo","formId":"phq9","formContent":"'
      .. form_content:gsub("%%", "%%%%") .. '"}'
end

function request()
   counter = counter + 1
   headers["Idempotency-Key"] = string.format(
      "%s-%04x-4000-8000-%012x", run_tag, thread_number, counter)
   local body = string.format(body_format, run_tag, thread_number, counter)
   return wrk.format("POST", "/api/collection/submit", headers, body)
end

function response(status, response_headers, response_body)
   if status >= 200 and status < 300 then
      acknowledged = acknowledged + 1
   end
end

function done(summary, latency, requests)
   local total_acknowledged = 0
   for _, thread in ipairs(threads) do
      total_acknowledged = total_acknowledged + thread:get("acknowledged")
   end

   local errors = summary.errors
   io.write(string.format(
      "BENCH_RESULT requests=%d acknowledged=%d connect_errors=%d read_errors=%d"
         .. " write_errors=%d timeouts=%d duration_us=%d p50_us=%d p99_us=%d\n",
      summary.requests, total_acknowledged, errors.connect, errors.read,
      errors.write, errors.timeout, summary.duration,
      latency:percentile(50), latency:percentile(99)))
end
