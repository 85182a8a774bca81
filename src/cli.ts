/**
 * The CLI's entry: answers `--version` at once and loads the rest (Effect, the commands) only for real work,
 * so start-up stays close to a bare `node`. See `cli-main.ts` for the composition root.
 */
import { fileURLToPath } from "node:url"
import pkg from "../package.json" with { type: "json" }

/** Run the CLI with `argv` (without node and the script). */
export const main = async (argv: ReadonlyArray<string>): Promise<void> => {
  const [name] = argv
  if (name === "--version" || name === "-v" || name === "version") {
    process.stdout.write(`${pkg.version}\n`)
    return
  }
  if (name === "run") {
    const { tryFastRun } = await import("./fast-run.js")
    const code = await tryFastRun(argv.slice(1))
    if (code !== undefined) {
      process.exitCode = code
      return
    }
  }
  const { runCli } = await import("./cli-main.js")
  runCli(argv, {
    stageRunner: fileURLToPath(new URL("./stage-runner.mjs", import.meta.url)),
    spawner: fileURLToPath(new URL("./spawner.mjs", import.meta.url)),
  })
}
