// Build GraphiQL into ../../schema/static/graphiql/ (run by `make graphiql`, after `npm ci`).
//
// Output: graphiql.js (the page), graphiql.css, the three Monaco workers, and assets/
// (fonts and images that the packages' CSS inlines as data: URLs, written out as files so
// that the page's Content-Security-Policy needs no `data:` source). Nothing is hashed
// here: collectstatic's manifest storage adds the hashes. The build is deterministic for
// a given lockfile, esbuild version and set of sources.
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import * as esbuild from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
// `node build.mjs --out DIR` builds elsewhere: `make graphiql-check` compares that with the committed files.
const outIndex = process.argv.indexOf("--out");
const out = outIndex === -1 ? join(here, "..", "..", "schema", "static", "graphiql") : resolve(process.argv[outIndex + 1]);

// graphiql/style.css already contains Monaco's styles: the CSS files that Monaco's ESM
// modules import would be a second copy.
const skipMonacoCss = {
  name: "skip-monaco-css",
  setup(build) {
    build.onResolve({ filter: /\.css$/ }, (args) =>
      args.importer.includes("/node_modules/monaco-editor/") ? { path: args.path, namespace: "empty-css" } : undefined,
    );
    build.onLoad({ filter: /.*/, namespace: "empty-css" }, () => ({ contents: "", loader: "css" }));
  },
};

const common = {
  bundle: true,
  minify: true,
  format: "iife",
  target: ["es2022"],
  legalComments: "eof",
  charset: "utf8",
  logLevel: "warning",
  define: { "process.env.NODE_ENV": '"production"' },
  absWorkingDir: here,
};

rmSync(out, { recursive: true, force: true });
mkdirSync(join(out, "assets"), { recursive: true });

await esbuild.build({
  ...common,
  entryPoints: { graphiql: "src/main.jsx" },
  outdir: out,
  jsx: "automatic",
  plugins: [skipMonacoCss],
});
await esbuild.build({
  ...common,
  entryPoints: {
    "editor.worker": "src/editor.worker.js",
    "json.worker": "src/json.worker.js",
    "graphql.worker": "src/graphql.worker.js",
  },
  outdir: out,
});

// data: URLs in the CSS become files named by their content.
const cssPath = join(out, "graphiql.css");
const extensions = { "font/woff2": "woff2", "font/woff": "woff", "font/ttf": "ttf", "image/png": "png", "image/svg+xml": "svg" };
const css = readFileSync(cssPath, "utf8").replace(
  /url\(\s*(["']?)data:([a-z0-9+./-]+);base64,([A-Za-z0-9+/=]+)\1\s*\)/g,
  (match, _quote, type, data) => {
    const extension = extensions[type];
    if (!extension) {
      throw new Error(`graphiql.css has a data: URL of an unexpected type: ${type}`);
    }
    const bytes = Buffer.from(data, "base64");
    const name = `assets/${createHash("sha256").update(bytes).digest("hex").slice(0, 16)}.${extension}`;
    writeFileSync(join(out, name), bytes);
    return `url(${name})`;
  },
);
if (css.includes("data:")) {
  throw new Error("graphiql.css still has a data: URL");
}
writeFileSync(cssPath, css);
