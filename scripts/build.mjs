// Bundles the CLI and the stage runner into dist/ with esbuild. Start-up matters: every rerun pays it,
// and a bundle loads in a fraction of the time node_modules resolution takes.
import { build } from "esbuild"

await build({
  entryPoints: { cli: "src/cli.ts", "stage-runner": "src/stage-runner.ts" },
  outdir: "dist",
  outExtension: { ".js": ".mjs" },
  bundle: true,
  platform: "node",
  target: "node20",
  format: "esm",
  // Code splitting: `cli.mjs` stays small and loads the rest on demand (see src/cli.ts).
  splitting: true,
  chunkNames: "chunks/[name]-[hash]",
  sourcemap: "linked",
  logLevel: "warning",
  // Bundled CommonJS (ajv) calls require(): give the ESM bundle one.
  banner: {
    js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);",
  },
})
