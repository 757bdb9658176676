import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import test from "node:test";

import { commitMutation, fetchQuery } from "relay-runtime";

import GatehouseNodeQuery from "./relay/__generated__/GatehouseNodeQuery.graphql.js";
import GatehouseSignInMutation from "./relay/__generated__/GatehouseSignInMutation.graphql.js";
import GatehouseUsersQuery from "./relay/__generated__/GatehouseUsersQuery.graphql.js";
import GatehouseViewerQuery from "./relay/__generated__/GatehouseViewerQuery.graphql.js";
import { createRelayEnvironment } from "./relay.js";
import { PROXY_HEADERS, recordingFetch, required } from "./testing.js";
import { Session } from "./session.js";

const PAGE = 10;

function mutate(environment, mutation, variables) {
  return new Promise((resolve, reject) => {
    commitMutation(environment, { mutation, variables, onCompleted: resolve, onError: reject });
  });
}

test("relay: the viewer, the same user through node(id:), every seeded user through users pages", async () => {
  const seeded = JSON.parse(required("GATEHOUSE_SEEDED_USERNAMES"));
  const username = required("GATEHOUSE_STAFF_USERNAME");
  const { fetch, exchanges } = recordingFetch();
  const session = new Session({ uri: required("GATEHOUSE_URL"), fetch, headers: PROXY_HEADERS });
  const environment = createRelayEnvironment({ session });

  // sign in as staff, through a Relay mutation
  const signedIn = await mutate(environment, GatehouseSignInMutation, {
    username,
    password: required("GATEHOUSE_STAFF_PASSWORD"),
  });
  session.set(signedIn.tokenAuth);
  assert.ok(session.token);

  // the viewer
  const viewer = (await fetchQuery(environment, GatehouseViewerQuery, {}).toPromise()).me;
  assert.equal(viewer.username, username);

  // the same user through node(id:), normalized into the same record of the store
  const refetched = (await fetchQuery(environment, GatehouseNodeQuery, { id: viewer.id }).toPromise()).node;
  assert.deepEqual({ id: refetched.id, username: refetched.username }, viewer);
  const record = environment.getStore().getSource().get(viewer.id);
  assert.equal(record.__typename, "User");
  assert.equal(record.username, username);

  // every seeded account, page by page, until hasNextPage is false
  const search = required("GATEHOUSE_SEED_PREFIX");
  const seen = [];
  const pages = [];
  let after = null;
  for (;;) {
    const { users } = await fetchQuery(environment, GatehouseUsersQuery, { first: PAGE, after, search }).toPromise();
    pages.push(users.edges.length);
    assert.equal(users.totalCount, seeded.length);
    seen.push(...users.edges.map((edge) => edge.node.username));
    assert.equal(users.pageInfo.endCursor, users.edges.at(-1)?.cursor ?? null);
    if (!users.pageInfo.hasNextPage) break;
    assert.equal(users.edges.length, PAGE);
    assert.ok(pages.length <= seeded.length, "hasNextPage never became false");
    after = users.pageInfo.endCursor;
  }
  assert.ok(pages.length > 1, `one page only: ${pages}`);
  assert.equal(new Set(seen).size, seen.length, `a user repeats: ${seen}`);
  assert.deepEqual([...seen].sort(), [...seeded].sort());
  // USERNAME_ASC: the pages follow one another in order
  assert.deepEqual(seen, [...seen].sort());

  // every request after sign-in carried a token, and each page was one request answered without errors
  const [signIn, ...rest] = exchanges;
  assert.equal(signIn.body.operationName, "GatehouseSignInMutation");
  for (const exchange of rest.filter((exchange) => exchange.body.operationName !== "Refresh")) {
    assert.match(exchange.headers.authorization, /^Bearer /);
  }
  const usersAnswers = rest.filter((exchange) => exchange.body.operationName === "GatehouseUsersQuery" && !exchange.response.errors);
  assert.equal(usersAnswers.length, pages.length);
});

test("relay: the committed artifacts are what relay-compiler makes of the documents and schema.graphql", () => {
  // The server's schema changed, or a document did, and `npm run relay` was not run.
  const done = spawnSync("node_modules/.bin/relay-compiler", ["--validate"], { encoding: "utf8" });
  assert.equal(done.status, 0, done.stdout + done.stderr);
});
