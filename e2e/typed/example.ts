// Apollo Client 4 with the typed documents GraphQL Code Generator makes of typed/*.graphql
// (`npm run codegen`); the README's "TypeScript types" code. Nothing here is run:
// codegen.test.js type-checks it with `tsc --noEmit`, so a generated type that stops
// matching this use fails CI.
import { ApolloClient, HttpLink, InMemoryCache } from "@apollo/client";

import { MeDocument, SignInDocument, UsersDocument } from "./__generated__/graphql";
import type { MeQuery, UsersQuery } from "./__generated__/graphql";

export const client = new ApolloClient({
  link: new HttpLink({ uri: "https://auth.example.com/graphql" }),
  cache: new InMemoryCache(),
});

/** Sign in: the variables are checked, the tokens typed. */
export async function signIn(username: string, password: string): Promise<{ token: string; refreshToken: string | null }> {
  const { data } = await client.mutate({ mutation: SignInDocument, variables: { username, password } });
  if (!data?.tokenAuth) throw new Error("tokenAuth answered no data");
  return { token: data.tokenAuth.token, refreshToken: data.tokenAuth.refreshToken };
}

/** The signed-in user's name, or null without a valid token. */
export async function whoAmI(): Promise<string | null> {
  const { data } = await client.query({ query: MeDocument, fetchPolicy: "network-only" });
  const username: string | undefined = data?.me?.username;
  return username ?? null;
}

/** One page of accounts matching `search` (staff only). */
export async function usersPage(search: string, after: string | null): Promise<UsersQuery["users"] | undefined> {
  const { data } = await client.query({ query: UsersDocument, variables: { first: 100, after, search } });
  return data?.users;
}

/** Every username matching `search`, page by page. */
export async function allUsernames(search: string): Promise<string[]> {
  const usernames: string[] = [];
  let after: string | null = null;
  for (;;) {
    const users = await usersPage(search, after);
    if (!users) return usernames;
    for (const edge of users.edges) if (edge?.node) usernames.push(edge.node.username);
    if (!users.pageInfo.hasNextPage) return usernames;
    after = users.pageInfo.endCursor;
  }
}

/** The result types can be named, e.g. for a component's props. */
export type Viewer = NonNullable<MeQuery["me"]>;

// Mistakes the generated types must catch, never called. Each line must be a type error:
// were a type to degrade to `any`, its @ts-expect-error would be unused, an error as well.
export async function mistakes(): Promise<void> {
  // @ts-expect-error: password is required
  await client.mutate({ mutation: SignInDocument, variables: { username: "alice" } });
  // @ts-expect-error: first is an Int
  await client.query({ query: UsersDocument, variables: { first: "10" } });
  const { data } = await client.query({ query: MeDocument });
  // @ts-expect-error: username is a string, not a number
  const wrong: number | undefined = data?.me?.username;
  // @ts-expect-error: the Me document does not select isEmailVerified
  void data?.me?.isEmailVerified;
  void wrong;
}
