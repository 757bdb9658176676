import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import test from "node:test";

import { generate, loadCodegenConfig } from "@graphql-codegen/cli";

// The paths of codegen.ts are relative to e2e/, where `npm run codegen` runs.
const HERE = import.meta.dirname;
const OUTPUT = "typed/__generated__/";

test("codegen: the committed typed/__generated__/ is what codegen makes of typed/*.graphql and schema.graphql", async (t) => {
  // The server's schema changed, or a document did, and `npm run codegen` was not run.
  process.chdir(HERE);
  const { config } = await loadCodegenConfig({ configFilePath: join(HERE, "codegen.ts") });
  assert.deepEqual(Object.keys(config.generates), [OUTPUT]);
  const scratch = mkdtempSync(join(tmpdir(), "gatehouse-codegen-"));
  t.after(() => rmSync(scratch, { recursive: true, force: true }));

  // the project's own config, with only the output folder moved to a scratch one
  await generate({ ...config, silent: true, generates: { [`${scratch}/`]: config.generates[OUTPUT] } }, true);

  const made = readdirSync(scratch).sort();
  assert.deepEqual(made, readdirSync(OUTPUT).sort(), "run `npm run codegen` in e2e/ and commit typed/__generated__/");
  assert.ok(made.includes("graphql.ts"), made.join(", "));
  for (const name of made) {
    assert.equal(readFileSync(join(scratch, name), "utf8"), readFileSync(join(OUTPUT, name), "utf8"), `${OUTPUT}${name} is stale: run \`npm run codegen\` in e2e/`);
  }
});

test("codegen: typed/example.ts type-checks with Apollo Client and the generated TypedDocumentNodes", () => {
  // tsc --noEmit; example.ts's @ts-expect-error lines fail it too if the types degrade to any.
  const done = spawnSync(join(HERE, "node_modules/.bin/tsc"), ["-p", "typed/tsconfig.json"], { cwd: HERE, encoding: "utf8" });
  assert.equal(done.status, 0, done.stdout + done.stderr);
});
