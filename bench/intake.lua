-- wrk script for bench/intake.py: every request is a signed issues.labeled delivery with its
-- own delivery id and its own issue number, so every one is new work for the server.
-- Usage: wrk -s bench/intake.lua URL -- SECRET TEMPLATE_FILE
-- The template is a JSON body in which __N__ stands for the issue number.
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

local threads = {}
local next_id = 0

function setup(thread)
  next_id = next_id + 1
  thread:set("thread_id", next_id)
  table.insert(threads, thread)
end

local secret, template, counter, path
local hex = {}
for i = 0, 255 do hex[i] = string.format("%02x", i) end

function init(args)
  secret = args[1]
  local f = assert(io.open(args[2], "rb"))
  template = f:read("*a")
  f:close()
  counter = 0
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
  counter = counter + 1
  local n = prefix .. string.format("%07d", counter)
  local body = template:gsub("__N__", n)
  return wrk.format("POST", path, {
    ["Content-Type"] = "application/json",
    ["X-GitHub-Event"] = "issues",
    ["X-GitHub-Delivery"] = "bench-" .. n,
    ["X-Hub-Signature-256"] = "sha256=" .. sign(body),
  }, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests": %d, "duration_us": %d, "status_errors": %d, "socket_errors": %d, ' ..
    '"p50_us": %d, "p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
