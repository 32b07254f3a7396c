-- wrk script for bench/intake.py: signed deliveries drawn in turn from a schedule of bodies.
-- Usage: wrk -s bench/intake.lua URL -- SECRET SCHEDULE_FILE
-- Each line of the schedule is `event<TAB>template file`; the lines are sent in order, over
-- and over. In a template __N__ stands for a number new to every request (a new issue, a new
-- delivery id) and __SHA__ for a commit that changes every 20 requests of templates using it
-- (one pull request's CI storm: 20 check runs a SHA).
local ffi = require("ffi")
ffi.cdef [[
typedef struct evp_md_st EVP_MD;
const EVP_MD *EVP_sha256(void);
unsigned char *HMAC(const EVP_MD *md, const void *key, int key_len,
                    const unsigned char *data, size_t n, unsigned char *out, unsigned int *out_len);
]]
-- wrk links libcrypto for TLS, so HMAC is already in the process.
local crypto = ffi.C
local digest = ffi.new("unsigned char[32]")
local digest_len = ffi.new("unsigned int[1]")
local CI_PER_SHA = 20

local threads = {}
local next_id = 0

function setup(thread)
  next_id = next_id + 1
  thread:set("thread_id", next_id)
  table.insert(threads, thread)
end

local secret, schedule, counter, ci_counter, path, prefix
local hex = {}
for i = 0, 255 do hex[i] = string.format("%02x", i) end

local function read(name)
  local f = assert(io.open(name, "rb"))
  local text = f:read("*a")
  f:close()
  return text
end

function init(args)
  secret = args[1]
  schedule = {}
  local cache = {}
  for line in io.lines(args[2]) do
    local event, file = line:match("^(%S+)\t(.+)$")
    cache[file] = cache[file] or read(file)
    table.insert(schedule, {event = event, template = cache[file]})
  end
  counter = 0
  ci_counter = 0
  -- Tasks this thread's requests should make: read by done() through the thread.
  expected = 0
  path = wrk.path
  -- Unique across threads and across runs against the same server.
  prefix = string.format("%d%02d", os.time() % 100000, thread_id)
end

local function sign(body)
  crypto.HMAC(crypto.EVP_sha256(), secret, #secret, body, #body, digest, digest_len)
  local out = {}
  for i = 0, 31 do out[i + 1] = hex[digest[i]] end
  return table.concat(out)
end

function request()
  local slot = schedule[counter % #schedule + 1]
  counter = counter + 1
  local n = prefix .. string.format("%07d", counter)
  local body = slot.template:gsub("__N__", n)
  if body:find("__SHA__", 1, true) then
    if ci_counter % CI_PER_SHA == 0 then expected = expected + 1 end
    local id = prefix .. string.format("%07d", math.floor(ci_counter / CI_PER_SHA))
    ci_counter = ci_counter + 1
    body = body:gsub("__SHA__", string.rep("0", 40 - #id) .. id)
  elseif slot.template:find('"action": "labeled"', 1, true) then
    expected = expected + 1
  end
  return wrk.format("POST", path, {
    ["Content-Type"] = "application/json",
    ["X-GitHub-Event"] = slot.event,
    ["X-GitHub-Delivery"] = "bench-" .. n,
    ["X-Hub-Signature-256"] = "sha256=" .. sign(body),
  }, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  local tasks = 0
  for _, thread in ipairs(threads) do tasks = tasks + thread:get("expected") end
  io.write(string.format(
    'RESULT {"requests": %d, "duration_us": %d, "status_errors": %d, "socket_errors": %d, ' ..
    '"p50_us": %d, "p99_us": %d, "max_us": %d, "expected_tasks": %d}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max, tasks))
end
