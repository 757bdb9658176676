// The Relay documents. relay-compiler (`npm run relay`) checks them against ../schema.graphql
// and writes one artifact per operation to __generated__/, which the tests import: without
// babel-plugin-relay these tags are never evaluated, so nothing imports this file.
import { graphql } from "relay-runtime";

export const documents = [
  graphql`
    mutation GatehouseSignInMutation($username: String!, $password: String!) {
      tokenAuth(username: $username, password: $password) {
        token
        refreshToken
      }
    }
  `,
  graphql`
    query GatehouseViewerQuery {
      me {
        id
        username
      }
    }
  `,
  graphql`
    query GatehouseNodeQuery($id: ID!) {
      node(id: $id) {
        id
        ... on User {
          username
        }
      }
    }
  `,
  graphql`
    query GatehouseUsersQuery($first: Int!, $after: String, $search: String) {
      users(first: $first, after: $after, search: $search, orderBy: USERNAME_ASC) {
        totalCount
        pageInfo {
          hasNextPage
          endCursor
        }
        edges {
          cursor
          node {
            id
            username
          }
        }
      }
    }
  `,
];
