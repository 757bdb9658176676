// GraphiQL for Gatehouse: the whole page's code, loaded from Gatehouse's own static files.
//
// The HTML (schema/templates/graphene/graphiql.html) has no inline script: it gives this
// bundle the URLs of the editor's workers (hashed by collectstatic) and the style nonce as
// data attributes of #graphiql.
import "./style-nonce.js";
import "graphiql/style.css";
import "@graphiql/plugin-explorer/style.css";
import "./page.css";

import { explorerPlugin } from "@graphiql/plugin-explorer";
import { createGraphiQLFetcher } from "@graphiql/toolkit";
import { GraphiQL } from "graphiql";
import { createRoot } from "react-dom/client";

import { memoryStorage } from "./memory-storage.js";

const container = document.getElementById("graphiql");
const { editorWorker, jsonWorker, graphqlWorker } = container.dataset;

// Monaco runs its language services in web workers; these come from 'self' as well.
globalThis.MonacoEnvironment = {
  getWorker(_workerId, label) {
    if (label === "graphql") {
      return new Worker(graphqlWorker);
    }
    if (label === "json") {
      return new Worker(jsonWorker);
    }
    return new Worker(editorWorker);
  },
};

// The endpoint is the page's own URL: GET with Accept: text/html is this page, POST the API.
const fetcher = createGraphiQLFetcher({ url: window.location.pathname });
const plugins = [explorerPlugin()];

createRoot(container).render(
  <GraphiQL
    fetcher={fetcher}
    plugins={plugins}
    storage={memoryStorage()}
    isHeadersEditorEnabled
    shouldPersistHeaders={false}
    defaultEditorToolsVisibility="headers"
  />,
);
