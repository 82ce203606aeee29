-- One wrk scenario of the Overplane benchmark (driven by bench/loadgen.py).
--
--   wrk -s bench/scenario.lua -H "Authorization: Bearer KEY" URL -- MODE PATH IDS BODY PATCH OUT
--
-- MODE   retrieve | list | create | update | delete | mix
-- PATH   the collection path, e.g. /api/crm/appointment
-- IDS    a file with one object id per line (retrieve, update, delete, mix)
-- BODY   a file with the JSON body of a create
-- PATCH  a file with the JSON body of an update
-- OUT    create only: a file the ids of created objects are appended to ("-" for none)
--
-- Every request string is built once in init(); request() only picks one. delete walks its id
-- list once (each DELETE needs a distinct, existing id) and stops the thread when the list is
-- used up; since wrk then still waits out the duration, this script times its own first
-- request and last response with a monotonic clock. done() prints one BENCH_RESULT JSON line.

local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clock_id, bench_timespec *tp);
]]
local CLOCK_MONOTONIC = 1
local timespec = ffi.new("bench_timespec")

local function now_us()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, timespec)
  return tonumber(timespec.tv_sec) * 1000000 + tonumber(timespec.tv_nsec) / 1000
end

local function read_lines(path)
  local lines = {}
  if path == nil or path == "-" then
    return lines
  end
  for line in io.lines(path) do
    if line ~= "" then
      lines[#lines + 1] = line
    end
  end
  return lines
end

local function read_file(path)
  if path == nil or path == "-" then
    return nil
  end
  local f = assert(io.open(path, "rb"))
  local text = f:read("*a")
  f:close()
  return text
end

local function headers(extra)
  local h = {}
  for k, v in pairs(wrk.headers) do
    h[k] = v
  end
  for k, v in pairs(extra or {}) do
    h[k] = v
  end
  return h
end

-- setup/done run in wrk's main Lua state; they see the threads only through get().
local threads = {}

function setup(thread)
  threads[#threads + 1] = thread
end

function init(args)
  mode = args[1]
  local path = args[2]
  local ids = read_lines(args[3])
  local json = { ["Content-Type"] = "application/json" }
  local body = read_file(args[4])
  local patch = read_file(args[5])

  local gets, patches, deletes = {}, {}, {}
  for i, id in ipairs(ids) do
    gets[i] = wrk.format("GET", path .. "/" .. id, headers())
    patches[i] = wrk.format("PATCH", path .. "/" .. id, headers(json), patch)
    deletes[i] = wrk.format("DELETE", path .. "/" .. id, headers())
  end
  local list = wrk.format("GET", path .. "?limit=20", headers())
  local create = body and wrk.format("POST", path, headers(json), body)

  -- The mix: 8 reads (7 retrieve, 1 list) and 2 writes (1 create, 1 update) in every 10.
  local plan = {
    retrieve = { gets },
    list = { { list } },
    create = { { create } },
    update = { patches },
    delete = { deletes },
    mix = { gets, gets, gets, gets, gets, gets, gets, { list }, { create }, patches },
  }
  slots = assert(plan[mode], "unknown mode " .. tostring(mode))
  slot = 0
  cursors = {} -- per request list: how far it has been walked
  ok, not_found, other = 0, 0, 0
  exhausted = 0
  first_us, last_us = 0, 0

  if mode == "create" and args[6] ~= nil and args[6] ~= "-" then
    created = assert(io.open(args[6], "a"))
    created:setvbuf("line")
  end
  -- wrk parses headers and bodies only if response() exists after init().
  if mode ~= "create" and mode ~= "delete" then
    response = nil
  end
end

function request()
  if first_us == 0 then
    first_us = now_us()
  end
  slot = slot % #slots + 1
  local requests = slots[slot]
  local cursor = cursors[requests] or 0
  if mode == "delete" then
    if cursor >= #requests then
      -- Used up: stop before another response is counted. This last request is never read.
      exhausted = 1
      wrk.thread:stop()
      return requests[#requests]
    end
    cursor = cursor + 1
  else
    cursor = cursor % #requests + 1
  end
  cursors[requests] = cursor
  return requests[cursor]
end

function response(status, headers, body)
  last_us = now_us()
  if status >= 200 and status < 300 then
    ok = ok + 1
    if created ~= nil then
      local id = body:match('"id":"([^"]+)"')
      if id then
        created:write(id, "\n")
      end
    end
  elseif status == 404 then
    not_found = not_found + 1
  else
    other = other + 1
  end
end

function done(summary, latency, requests)
  local ok_total, not_found_total, other_total, exhausted_any = 0, 0, 0, 0
  local elapsed_us = 0
  for _, thread in ipairs(threads) do
    ok_total = ok_total + (thread:get("ok") or 0)
    not_found_total = not_found_total + (thread:get("not_found") or 0)
    other_total = other_total + (thread:get("other") or 0)
    exhausted_any = math.max(exhausted_any, thread:get("exhausted") or 0)
    local first, last = thread:get("first_us") or 0, thread:get("last_us") or 0
    if last > first then
      elapsed_us = math.max(elapsed_us, last - first)
    end
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,'
      .. '"status_errors":%d,"socket_errors":%d,"ok":%d,"not_found":%d,"other":%d,'
      .. '"exhausted":%d,"elapsed_us":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect + e.read + e.write + e.timeout, ok_total, not_found_total,
    other_total, exhausted_any, elapsed_us
  ))
end
