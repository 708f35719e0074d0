-- wrk script: single-event ingest with unique transaction ids. wrk is a far lighter client than k6 (C and Lua,
-- no JavaScript VM per client), so on a co-located 2-core machine it shows how much more the server takes than k6
-- can offer. The API key comes from the environment (BILLSTREAM_LOAD_KEY).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BILLSTREAM_LOAD_KEY")
-- Each wrk thread has its own Lua state, where math.random starts from the same seed: the thread number (set by
-- setup) keeps their transaction ids apart, else the threads send each other's identities as duplicates.
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("thread_number", threads)
end
local counter = 0
local prefix = nil
request = function()
  prefix = prefix or ("wrk-" .. tostring(os.time()) .. "-" .. tostring(thread_number or 0))
  counter = counter + 1
  local body = '{"event": {"transaction_id": "' .. prefix .. '-' .. counter .. '", "external_subscription_id": "sub_1", '
    .. '"code": "api_calls", "properties": {"gb": "12.5", "region": "eu-west-1"}, "timestamp": ' .. os.time() .. '}}'
  return wrk.format(nil, "/api/v1/events", nil, body)
end
