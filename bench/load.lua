-- The wrk script of bench/load.py: builds each scenario's requests and checks every response.
--
--   wrk -t1 -cC -dDs -s bench/load.lua URL -- SCENARIO FILE OFFSET COUNT TAG NUSERS PASSWORD
--
--   SCENARIO  me_valid | me_none | me_invalid | me_expired | tokenAuth | refreshToken | register
--   FILE      one token per line ("-" for none): the access tokens of the me_* scenarios
--             (rotated over), or the pool of never-used refresh tokens of refreshToken
--   OFFSET    where this run starts: the first pool line (refreshToken), the first user and
--             client address (tokenAuth, register), so that runs never repeat each other
--   COUNT     refreshToken: how many pool lines from OFFSET this run may use, each once
--   TAG       register: part of every new username, unique to this run
--   NUSERS    tokenAuth: the seeded users are user1..userN@example.com
--   PASSWORD  tokenAuth: their password; register: the password of new accounts
--
-- Must run with -t1 (one Lua state): the refresh pool and the counters are this thread's.
-- A response that is not what the scenario must answer is counted as bad: load.py refuses
-- the run's figures, so a fast error can never pass for a fast answer. A refresh pool
-- that runs out stops the thread (never reuses a token) and is reported as such.
-- done() prints one WRKJSON line, and a WRKBAD line with the first wrong answer.

local ME_QUERY = '{"query":"query { me { id username email } }"}'
local LOGIN = "mutation($e:String!,$p:String!){ tokenAuth(email:$e,password:$p){ token refreshToken } }"
local REFRESH = "mutation($r:String!){ refreshToken(refreshToken:$r){ token refreshToken } }"
local REGISTER = "mutation($u:String!,$e:String!,$p:String!){ register(username:$u,email:$e,password:$p)"
  .. "{ token refreshToken errors { field code } } }"

local function no_errors(b)
  return not b:find('"errors"', 1, true)
end

local function token_error(code)
  return function(s, b)
    return s == 200 and b:find('"code"%s*:%s*"' .. code .. '"') and not b:find('"me"%s*:%s*{')
  end
end

-- What a right answer looks like: status, body -> truthy.
local EXPECT = {
  me_valid = function(s, b)
    return s == 200 and b:find('"me"%s*:%s*{') and b:find('"email"%s*:%s*"user%d+@example%.com"') and no_errors(b)
  end,
  me_none = function(s, b)
    return s == 200 and b:find('"me"%s*:%s*null') and no_errors(b)
  end,
  me_invalid = token_error("TOKEN_INVALID"),
  me_expired = token_error("TOKEN_EXPIRED"),
  tokenAuth = function(s, b)
    return s == 200 and b:find('"token"%s*:%s*"') and b:find('"refreshToken"%s*:%s*"') and no_errors(b)
  end,
  refreshToken = function(s, b)
    return s == 200 and b:find('"token"%s*:%s*"') and b:find('"refreshToken"%s*:%s*"') and no_errors(b)
  end,
  -- A success has an empty payload `errors` list and no top-level errors.
  register = function(s, b)
    return s == 200 and b:find('"token"%s*:%s*"') and not b:find('"errors"%s*:%s*%[%s*{')
  end,
}

-- Every request comes "from" a client behind the TLS proxy (TRUSTED_PROXY_COUNT=1):
-- X-Forwarded-For carries documentation addresses (RFC 5737), never a real target.
local CLIENT_NETS = { "192.0.2.", "198.51.100.", "203.0.113." }
local function client_address(i)
  local a = i % 762
  return CLIENT_NETS[math.floor(a / 254) + 1] .. (a % 254 + 1)
end

local function headers(i, extra)
  local h = {
    ["X-Forwarded-Proto"] = "https",
    ["X-Forwarded-For"] = client_address(i),
    ["Accept"] = "application/json",
    ["Content-Type"] = "application/json",
  }
  for k, v in pairs(extra or {}) do h[k] = v end
  return h
end

local threads = {}
local scenario, expect, build
local reqs, pool = {}, {}
local offset, nusers, password, tag = 0, 1000, "", ""
local stride = 1
-- Globals of the thread: done() reads them with thread:get().
bad, bad_sample, sent, exhausted = 0, "", 0, 0

function setup(thread)
  threads[#threads + 1] = thread
end

local function gcd(a, b)
  while b ~= 0 do a, b = b, a % b end
  return a
end

function init(args)
  scenario = args[1]
  local file = args[2] or "-"
  offset = tonumber(args[3] or "0")
  local count = tonumber(args[4] or "0")
  tag = args[5] or "x"
  nusers = tonumber(args[6] or "1000")
  password = args[7] or ""
  expect = EXPECT[scenario]
  assert(expect, "unknown scenario " .. tostring(scenario))

  local lines = {}
  if file ~= "-" then
    local n = 0
    for line in io.lines(file) do
      if #line > 0 then
        n = n + 1
        if scenario ~= "refreshToken" then
          lines[#lines + 1] = line
        elseif n > offset and n <= offset + count then
          pool[#pool + 1] = line
        end
      end
    end
  end

  if scenario:find("^me_") then
    -- Built once, handed out in turn.
    for i = 1, math.max(#lines, 1) do
      local extra = lines[i] and { Authorization = "Bearer " .. lines[i] } or nil
      reqs[i] = wrk.format("POST", nil, headers(offset + i, extra), ME_QUERY)
    end
    assert(scenario == "me_none" or #lines > 0, "no tokens for " .. scenario)
  elseif scenario == "tokenAuth" then
    -- Consecutive logins visit users spread over the table, each user once per NUSERS logins.
    stride = 7919
    while gcd(stride, nusers) ~= 1 do stride = stride + 1 end
  end
end

local function body(query, variables)
  return string.format('{"query":"%s","variables":%s}', query, variables)
end

function request()
  sent = sent + 1
  local k = offset + sent
  if scenario:find("^me_") then
    return reqs[(sent - 1) % #reqs + 1]
  elseif scenario == "tokenAuth" then
    local user = (k * stride) % nusers + 1
    local vars = string.format('{"e":"user%d@example.com","p":"%s"}', user, password)
    return wrk.format("POST", nil, headers(k), body(LOGIN, vars))
  elseif scenario == "refreshToken" then
    local token = pool[sent]
    if token == nil then
      -- Never reuse a token: stop this thread; load.py reports the run as cut short.
      exhausted = 1
      sent = sent - 1
      wrk.thread:stop()
      return wrk.format("GET", "/healthz", headers(k))
    end
    return wrk.format("POST", nil, headers(k), body(REFRESH, string.format('{"r":"%s"}', token)))
  else -- register
    local name = string.format("lb%s%d", tag, sent)
    local vars = string.format('{"u":"%s","e":"%s@example.com","p":"%s"}', name, name, password)
    return wrk.format("POST", nil, headers(k), body(REGISTER, vars))
  end
end

function response(status, _, b)
  b = b or ""
  if exhausted == 1 and not b:find('"data"', 1, true) then
    return -- the /healthz stand-in sent while stopping: not an answer of this scenario
  end
  if not expect(status, b) then
    bad = bad + 1
    if bad_sample == "" then bad_sample = status .. " " .. b:sub(1, 400) end
  end
end

function done(summary, latency, _)
  local nbad, sample, nsent, nexhausted = 0, "", 0, 0
  for _, t in ipairs(threads) do
    nbad = nbad + (t:get("bad") or 0)
    nsent = nsent + (t:get("sent") or 0)
    nexhausted = nexhausted + (t:get("exhausted") or 0)
    if sample == "" then sample = t:get("bad_sample") or "" end
  end
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"non2xx":%d,"socket_errors":%d,"timeouts":%d,'
      .. '"bad":%d,"sent":%d,"exhausted":%d,"p50_us":%d,"p99_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write, e.timeout,
    nbad, nsent, nexhausted, latency:percentile(50), latency:percentile(99), latency.mean))
  if sample ~= "" then
    io.write("WRKBAD " .. sample:gsub("[\r\n]", " ") .. "\n")
  end
end
