/**
 * A Storage (the localStorage interface GraphiQL's `storage` prop takes) kept in memory.
 *
 * GraphiQL keeps tabs, queries, headers and history in localStorage by default, where a
 * bearer token typed into the headers editor would outlive the tab and be readable by any
 * later page of the origin. Here everything lives as long as the page.
 */
export function memoryStorage() {
  const items = new Map();
  return {
    getItem: (key) => (items.has(key) ? items.get(key) : null),
    setItem: (key, value) => {
      items.set(key, String(value));
    },
    removeItem: (key) => {
      items.delete(key);
    },
    clear: () => {
      items.clear();
    },
    get length() {
      return items.size;
    },
  };
}
