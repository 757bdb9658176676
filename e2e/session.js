// The tokens a frontend holds, in memory only (never localStorage), and the one way it
// refreshes them. Apollo's error link and Relay's network layer both call `refresh()`.

const REFRESH = `mutation Refresh($refreshToken: String!) {
  refreshToken(refreshToken: $refreshToken) { token refreshToken }
}`;

export class Session {
  /**
   * @param {object} options
   * @param {string} options.uri - Gatehouse's GraphQL endpoint
   * @param {typeof fetch} [options.fetch]
   * @param {Record<string, string>} [options.headers] - sent with every request
   */
  constructor({ uri, fetch = globalThis.fetch, headers = {} }) {
    this.uri = uri;
    this.fetch = fetch;
    this.headers = headers;
    this.token = null;
    this.refreshToken = null;
    this.refreshing = null;
  }

  /** Keep the tokens of tokenAuth, register or refreshToken. */
  set({ token, refreshToken }) {
    this.token = token;
    this.refreshToken = refreshToken;
  }

  clear() {
    this.token = null;
    this.refreshToken = null;
  }

  /**
   * Exchange the refresh token for new tokens. A refresh token works once: requests that
   * fail together share one refresh instead of each spending (and so revoking) the token.
   */
  refresh() {
    this.refreshing ??= this.#refresh().finally(() => {
      this.refreshing = null;
    });
    return this.refreshing;
  }

  async #refresh() {
    const response = await this.fetch(this.uri, {
      method: "POST",
      headers: { "Content-Type": "application/json", ...this.headers },
      body: JSON.stringify({ query: REFRESH, operationName: "Refresh", variables: { refreshToken: this.refreshToken } }),
    });
    const { data, errors } = await response.json();
    if (!data?.refreshToken) {
      // TOKEN_REVOKED or an expired session: only signing in again helps.
      this.clear();
      const code = errors?.[0]?.extensions?.code ?? `HTTP ${response.status}`;
      throw Object.assign(new Error(`refreshToken failed: ${code}`), { code });
    }
    this.set(data.refreshToken);
  }
}

/** Whether a GraphQL response's errors say the access token has expired. */
export const tokenExpired = (errors) => (errors ?? []).some((error) => error.extensions?.code === "TOKEN_EXPIRED");
