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
const { main } = await import(bundle.href)
main(process.argv.slice(2))
