import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import test from "node:test";

import { gql } from "@apollo/client";
import { CombinedGraphQLErrors } from "@apollo/client/errors";

import { createApolloClient } from "./apollo.js";
import { outcome, PROXY_HEADERS, recordingFetch, required, sleep } from "./testing.js";
import { Session } from "./session.js";

const REGISTER = gql`
  mutation Register($username: String!, $email: String!, $password: String!) {
    register(username: $username, email: $email, password: $password) {
      user { id username }
      token
      refreshToken
      errors { field code }
    }
  }
`;
const SIGN_IN = gql`
  mutation SignIn($username: String!, $password: String!) {
    tokenAuth(username: $username, password: $password) { token refreshToken payload }
  }
`;
const ME = gql`
  query Me { me { id username } }
`;
const LOGOUT_ALL = gql`
  mutation LogoutAll { logoutAll { success revokedSessions } }
`;

const sha256 = (text) => createHash("sha256").update(text).digest("hex");
const hashOf = (exchange) => exchange.body.extensions?.persistedQuery?.sha256Hash;

/** The exchanges of one operation: [hash alone → PERSISTED_QUERY_NOT_FOUND, text + hash → answer]. */
function assertPersistedOnFirstUse(exchanges, operationName) {
  const sent = exchanges.filter((exchange) => exchange.body.operationName === operationName);
  assert.equal(sent.length, 2, `${operationName}: ${JSON.stringify(sent)}`);
  const [unknown, registered] = sent;
  assert.equal(unknown.body.query, undefined);
  assert.equal(outcome(unknown), "PERSISTED_QUERY_NOT_FOUND");
  assert.equal(typeof registered.body.query, "string");
  assert.equal(hashOf(registered), sha256(registered.body.query));
  assert.equal(hashOf(unknown), hashOf(registered));
  assert.equal(outcome(registered), "ok", JSON.stringify(registered.response));
  return hashOf(registered);
}

test("apollo: register, sign in, refresh on TOKEN_EXPIRED once, sign out everywhere", async () => {
  const lifetime = Number(required("GATEHOUSE_ACCESS_TOKEN_LIFETIME"));
  const username = required("GATEHOUSE_APOLLO_USERNAME");
  const password = randomBytes(18).toString("base64url");
  const { fetch, exchanges } = recordingFetch();
  const session = new Session({ uri: required("GATEHOUSE_URL"), fetch, headers: PROXY_HEADERS });
  const client = createApolloClient({ session, fetch });

  // register: a new account, sent as a persisted query
  const registered = await client.mutate({
    mutation: REGISTER,
    variables: { username, email: `${username}@example.com`, password },
  });
  assert.deepEqual(registered.data.register.errors, []);
  assert.equal(registered.data.register.user.username, username);
  assertPersistedOnFirstUse(exchanges, "Register");

  // tokenAuth: the app keeps the tokens
  const signedIn = (await client.mutate({ mutation: SIGN_IN, variables: { username, password } })).data.tokenAuth;
  assert.equal(signedIn.payload.exp - signedIn.payload.iat, lifetime);
  session.set(signedIn);
  assertPersistedOnFirstUse(exchanges, "SignIn");

  // me, with the token: NOT_FOUND for the hash, then the text, then the answer
  const me = await client.query({ query: ME, fetchPolicy: "network-only" });
  assert.equal(me.data.me.username, username);
  const meHash = assertPersistedOnFirstUse(exchanges, "Me");
  assert.ok(
    exchanges.filter((exchange) => exchange.body.operationName === "Me").every(
      (exchange) => exchange.headers.authorization === `Bearer ${signedIn.token}`,
    ),
  );

  // the access token expires (its exp is in whole seconds)
  await sleep(Math.max(0, (signedIn.payload.exp + 1) * 1000 - Date.now()));

  // me again: TOKEN_EXPIRED, one refresh, the same operation once more, and the answer
  const before = exchanges.length;
  const again = await client.query({ query: ME, fetchPolicy: "network-only" });
  assert.equal(again.data.me.username, username);
  assert.equal(again.data.me.id, me.data.me.id);
  const retried = exchanges.slice(before);
  assert.deepEqual(
    retried.map((exchange) => [exchange.body.operationName, outcome(exchange)]),
    [["Me", "TOKEN_EXPIRED"], ["Refresh", "ok"], ["Me", "ok"]],
  );
  const [expired, refreshed, retry] = retried;
  assert.equal(expired.headers.authorization, `Bearer ${signedIn.token}`);
  assert.equal(refreshed.body.variables.refreshToken, signedIn.refreshToken);
  assert.equal(refreshed.headers.authorization, undefined);
  assert.notEqual(session.token, signedIn.token);
  assert.notEqual(session.refreshToken, signedIn.refreshToken);
  assert.equal(session.token, refreshed.response.data.refreshToken.token);
  assert.equal(retry.headers.authorization, `Bearer ${session.token}`);
  // and both were the hash alone: the server remembered the query
  for (const exchange of [expired, retry]) {
    assert.equal(exchange.body.query, undefined);
    assert.equal(hashOf(exchange), meHash);
  }

  // logoutAll: both sessions (register's and tokenAuth's) end
  const loggedOut = await client.mutate({ mutation: LOGOUT_ALL });
  assert.deepEqual(loggedOut.data.logoutAll, { __typename: "LogoutAll", success: true, revokedSessions: 2 });

  // me: TOKEN_REVOKED reaches the caller, with no refresh and no retry
  const afterLogout = exchanges.length;
  await assert.rejects(client.query({ query: ME, fetchPolicy: "network-only" }), (error) => {
    assert.ok(CombinedGraphQLErrors.is(error), String(error));
    assert.deepEqual(error.errors.map((e) => e.extensions.code), ["TOKEN_REVOKED"]);
    return true;
  });
  assert.deepEqual(
    exchanges.slice(afterLogout).map((exchange) => [exchange.body.operationName, outcome(exchange), hashOf(exchange)]),
    [["Me", "TOKEN_REVOKED", meHash]],
  );
  // and the refresh token the app holds is dead too
  await assert.rejects(session.refresh(), { code: "TOKEN_REVOKED" });
  assert.equal(session.token, null);
});
