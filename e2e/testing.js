// What the tests share. recordingFetch: a fetch that records what went over the wire (each
// request's headers and JSON body, each response's status and JSON body); the tests read those.

export function recordingFetch() {
  const exchanges = [];
  async function fetch(url, init = {}) {
    const response = await globalThis.fetch(url, init);
    const text = await response.clone().text();
    exchanges.push({
      method: init.method ?? "GET",
      url: String(url),
      headers: Object.fromEntries(new Headers(init.headers)),
      body: init.body === undefined ? null : JSON.parse(init.body),
      status: response.status,
      response: JSON.parse(text),
    });
    return response;
  }
  return { fetch, exchanges };
}

/** The `extensions.code` of an answer's first error, or "ok" when it has none. */
export const outcome = (exchange) => exchange.response.errors?.[0]?.extensions?.code ?? "ok";

/** Environment variables the pytest driver sets; fail clearly when run without it. */
export function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run these tests through tests/test_e2e_clients.py`);
  return value;
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** What a TLS-terminating proxy adds; the server under test listens on plain HTTP. */
export const PROXY_HEADERS = { "X-Forwarded-Proto": "https" };
