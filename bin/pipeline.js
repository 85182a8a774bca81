#!/usr/bin/env node
// The thin binary: everything lives in the bundle that `npm install` builds (scripts/build.mjs).
import { existsSync } from "node:fs"

const bundle = new URL("../dist/cli.mjs", import.meta.url)
if (!existsSync(bundle)) {
  process.stderr.write(
    "pipeline: dist/cli.mjs is missing. Run `npm install` (or `npm run build`) in the project first.\n",
  )
  process.exit(2)
}
// V8 compiles a function with its optimizing compiler once it has run for a while (its interrupt budget). A
// run is a short process whose hot code is spread over many functions, and with Node 20's default budget
// V8's compiler threads took a third of the orchestrator's CPU on a 1,000-stage run, optimizing functions that
// had little left to run. Twice the budget: 12% less CPU there, and 12% less wall-clock time at 100 stages
// (`bench/overhead.mjs`; the README's benchmark section). Set only on the Node version it was measured on.
// `pipeline run` doubles it again once its stages start (src/v8-tuning.ts).
if (process.versions.node.startsWith("20.")) {
  const { setFlagsFromString } = await import("node:v8")
  setFlagsFromString("--interrupt-budget=135168") // Node 20's default: 67584
}
const { main } = await import(bundle.href)
main(process.argv.slice(2))
