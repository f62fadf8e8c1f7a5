-- wrk script for `quarry serve`: POSTs /collections/bench/points/search with the query bodies in
-- $WRK_BODIES (one JSON body per line), cycling through them; counts non-200 answers as errors
-- and prints latency percentiles as one JSON line at the end.
local bodies = {}
local n = 0
local i = 0
local errors = 0

function init(args)
  for line in io.lines(os.getenv("WRK_BODIES")) do
    n = n + 1
    bodies[n] = line
  end
end

function request()
  i = i % n + 1
  return wrk.format("POST", "/collections/bench/points/search", {["Content-Type"] = "application/json"}, bodies[i])
end

function response(status, headers, body)
  if status ~= 200 then
    errors = errors + 1
  end
end

function done(summary, latency, requests)
  local non2xx = summary.errors.status or 0
  io.write(string.format(
    '{"tool": "wrk", "requests": %d, "seconds": %.3f, "qps": %.1f, "p50_ms": %.3f, "p99_ms": %.3f, "non_200": %d, "socket_errors": %d}\n',
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, non2xx,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
