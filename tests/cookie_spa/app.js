// A browser app in cookie mode, as the README describes it: the access token in memory,
// the refresh token in Gatehouse's HttpOnly cookie, every call with credentials: "include".
"use strict";

(() => {
  const api = new URLSearchParams(location.search).get("api");
  let accessToken = null;

  // One GraphQL call. A request the browser blocks (CORS) rejects with a TypeError:
  // report that as `blocked`, with no body, instead of throwing.
  async function call(query, variables = {}) {
    const headers = { "Content-Type": "application/json" };
    if (accessToken) headers.Authorization = `Bearer ${accessToken}`;
    try {
      const response = await fetch(`${api}/graphql`, {
        method: "POST",
        credentials: "include",
        headers,
        body: JSON.stringify({ query, variables }),
      });
      return { blocked: false, status: response.status, body: await response.json() };
    } catch (error) {
      return { blocked: true, error: `${error.name}: ${error.message}` };
    }
  }

  function keep(result, field) {
    const payload = result.body && result.body.data && result.body.data[field];
    if (payload && payload.token) accessToken = payload.token;
    return result;
  }

  window.spa = {
    signIn: async (username, password) =>
      keep(
        await call(
          "mutation($u: String!, $p: String!) { tokenAuth(username: $u, password: $p) { token refreshToken } }",
          { u: username, p: password },
        ),
        "tokenAuth",
      ),
    // No argument: Gatehouse reads the refresh token from its cookie.
    refresh: async () => keep(await call("mutation { refreshToken { token refreshToken } }"), "refreshToken"),
    revoke: async () => call("mutation { revokeToken { revoked } }"),
    me: async () => call("{ me { username } }"),
    accessToken: () => accessToken,
  };
})();
