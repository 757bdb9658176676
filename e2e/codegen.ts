// GraphQL Code Generator: TypeScript types and typed documents for the operations in
// typed/*.graphql, checked against the committed ../schema.graphql (`npm run codegen`).
// codegen.test.js regenerates into a scratch folder and fails when the committed
// typed/__generated__/ differs, so a schema change cannot land without regenerating.
import type { CodegenConfig } from "@graphql-codegen/cli";

const config: CodegenConfig = {
  schema: "../schema.graphql",
  documents: ["typed/**/*.graphql"],
  generates: {
    "typed/__generated__/": {
      preset: "client",
      presetConfig: {
        // Apollo Client 4 masks fragments itself (dataMasking); the preset's masking would clash.
        fragmentMasking: false,
      },
      config: {
        // Every custom scalar of the schema, named (strictScalars fails on a new one):
        // DateTime is an ISO 8601 string on the wire, GenericScalar (a token's payload) any JSON.
        scalars: { DateTime: "string", GenericScalar: "unknown" },
        strictScalars: true,
        useTypeImports: true,
      },
    },
  },
};

export default config;
