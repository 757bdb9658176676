// A Relay environment for Gatehouse: relay-runtime with a fetch-based network layer.
import { Environment, Network, RecordSource, Store } from "relay-runtime";

import { tokenExpired } from "./session.js";

/**
 * @param {object} options
 * @param {import("./session.js").Session} options.session - holds the tokens and refreshes them
 */
export function createRelayEnvironment({ session }) {
  async function post(params, variables) {
    const response = await session.fetch(session.uri, {
      method: "POST",
      headers: {
        "Content-Type": "application/json",
        ...session.headers,
        ...(session.token ? { Authorization: `Bearer ${session.token}` } : {}),
      },
      body: JSON.stringify({ query: params.text, operationName: params.name, variables }),
    });
    return response.json();
  }

  async function fetchFn(params, variables) {
    let result = await post(params, variables);
    if (tokenExpired(result.errors) && session.refreshToken) {
      // Refresh, then send the operation again, once.
      await session.refresh();
      result = await post(params, variables);
    }
    if (result.errors?.length) {
      // Relay would store the nulls of a failed field as data: fail the request instead.
      const codes = result.errors.map((error) => error.extensions?.code ?? error.message);
      throw Object.assign(new Error(`${params.name}: ${codes.join(", ")}`), { errors: result.errors });
    }
    return result;
  }

  return new Environment({ network: Network.create(fetchFn), store: new Store(new RecordSource()) });
}
