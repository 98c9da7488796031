-- wrk script: every request a claim by a different shopper.
-- wrk -tT ... -s benchmarks/claims.lua URL -- TOKENS_FILE OFFSET PATH T
-- Thread t of T sends tokens OFFSET+t, OFFSET+t+T, ... (one token a line in TOKENS_FILE;
-- distinct across threads and, with a fresh OFFSET, across runs on one campaign). The
-- same index goes in X-User-Id for the reference apps, which do no authentication.
-- done() prints one line "WRK-JSON {...}": statuses, socket errors, latency percentiles.

local threads = {}
local counter = 0

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  tokens = {}
  for line in io.lines(args[1]) do
    if #line > 0 then tokens[#tokens + 1] = line end
  end
  offset = tonumber(args[2])
  path = args[3]
  stride = tonumber(args[4])
  next_index = offset + tid
  statuses = {}
  wrapped = 0
  body = '{"share_contact": true}'
end

function request()
  local i = next_index
  next_index = next_index + stride
  if i >= #tokens then
    wrapped = wrapped + 1
    i = i % #tokens
  end
  return wrk.format("POST", path, {
    ["Authorization"] = "Bearer " .. tokens[i + 1],
    ["Content-Type"] = "application/json",
    ["X-User-Id"] = "u" .. i,
  }, body)
end

function response(status, headers, body)
  local key = tostring(status)
  statuses[key] = (statuses[key] or 0) + 1
end

function done(summary, latency, requests)
  local merged = {}
  local wraps = 0
  local highest = 0
  for _, t in ipairs(threads) do
    local s = t:get("statuses")
    for k, v in pairs(s) do merged[k] = (merged[k] or 0) + v end
    wraps = wraps + t:get("wrapped")
    local n = t:get("next_index")
    if n > highest then highest = n end
  end
  local parts = {}
  for k, v in pairs(merged) do parts[#parts + 1] = string.format('"%s": %d', k, v) end
  local e = summary.errors
  io.write(string.format(
    'WRK-JSON {"duration_us": %d, "requests": %d, "statuses": {%s}, ' ..
    '"socket_errors": {"connect": %d, "read": %d, "write": %d, "timeout": %d}, ' ..
    '"non_2xx_3xx": %d, "wrapped": %d, "next_offset": %d, ' ..
    '"p50_ms": %.3f, "p90_ms": %.3f, "p99_ms": %.3f, "max_ms": %.3f, "mean_ms": %.3f}\n',
    summary.duration, summary.requests, table.concat(parts, ", "),
    e.connect, e.read, e.write, e.timeout, e.status, wraps, highest,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000, latency.mean / 1000))
end
