// Apollo Client 4 for Gatehouse: the links the README shows, as the tests run them.
import { createHash } from "node:crypto";

import { ApolloClient, ApolloLink, HttpLink, InMemoryCache } from "@apollo/client";
import { CombinedGraphQLErrors } from "@apollo/client/errors";
import { SetContextLink } from "@apollo/client/link/context";
import { ErrorLink } from "@apollo/client/link/error";
import { PersistedQueryLink } from "@apollo/client/link/persisted-queries";
import { from, switchMap } from "rxjs";

import { tokenExpired } from "./session.js";

/**
 * @param {object} options
 * @param {import("./session.js").Session} options.session - holds the tokens and refreshes them
 * @param {typeof fetch} [options.fetch]
 */
export function createApolloClient({ session, fetch = globalThis.fetch }) {
  // Every request carries the current access token (read per request: it changes on refresh).
  const authLink = new SetContextLink((prevContext) => ({
    headers: {
      ...prevContext.headers,
      ...(session.token ? { authorization: `Bearer ${session.token}` } : {}),
    },
  }));

  // TOKEN_EXPIRED: refresh, then send the same operation again, once. Any other error
  // (TOKEN_REVOKED, a failed refresh) reaches the caller: the user must sign in again.
  const refreshLink = new ErrorLink(({ error, operation, forward }) => {
    if (!CombinedGraphQLErrors.is(error) || !tokenExpired(error.errors)) return;
    if (operation.getContext().retriedAfterRefresh || !session.refreshToken) return;
    operation.setContext({ retriedAfterRefresh: true });
    return from(session.refresh()).pipe(switchMap(() => forward(operation)));
  });

  // Automatic persisted queries: the hash first, the text only when the server asks for it.
  const persistedQueryLink = new PersistedQueryLink({
    sha256: (text) => createHash("sha256").update(text).digest("hex"),
  });

  const httpLink = new HttpLink({ uri: session.uri, fetch, headers: session.headers });

  return new ApolloClient({
    // refreshLink sits before authLink, so the retry is sent with the new token.
    link: ApolloLink.from([refreshLink, authLink, persistedQueryLink, httpLink]),
    cache: new InMemoryCache(),
  });
}
