/**
 * `pipeline doctor`: the compute backend a run would get here and why, whether each candidate can run and why
 * (not), the GPUs detected and the library versions, and which spawner starts stage processes. Starts each
 * backend for real, so it takes a second or two.
 */
import { Effect } from "effect"
import type { BackendChoice, BackendName, BackendReport } from "../compute/backend.js"
import { UsageError } from "../errors.js"
import { spawnerProgram } from "../spawner-client.js"
import type { CommandSpec } from "./context.js"
import { jsonOption, str } from "./options.js"

const NAMES: ReadonlyArray<BackendName> = ["tensorflow", "webgpu", "wasm", "cpu"]

/** Which spawner a run would use, in words (see `spawner-client.ts`). */
export const describeSpawner = (
  nodeEntry: string,
  env: Readonly<Record<string, string | undefined>>,
): { readonly kind: "node" | "native" | "none"; readonly detail: string } => {
  try {
    const p = spawnerProgram(nodeEntry, env)
    return p.kind === "native"
      ? { kind: "native", detail: `${p.path} (posix_spawn)` }
      : {
          kind: "node",
          detail:
            env.PIPELINE_SPAWNER === "node"
              ? `${p.path} (PIPELINE_SPAWNER=node)`
              : `${p.path} (the native spawner was not built: no C compiler when npm ran the build)`,
        }
  } catch (e) {
    return { kind: "none", detail: (e as Error).message }
  }
}

/** The text report. */
export const formatDoctor = (
  choice: BackendChoice,
  report: BackendReport,
  spawner?: ReturnType<typeof describeSpawner>,
): string => {
  const lines = [
    `backend   ${choice.name}${choice.fallback ? " (software stand-in for a GPU)" : ""}`,
    `  why     ${choice.reason}`,
    `gpus      ${report.gpus.count}  (${report.gpus.source})`,
    ...report.gpus.devices.map((d) => `          ${d}`),
    "candidates",
    ...report.candidates.map(
      (c) => `  ${c.name.padEnd(11)} ${(c.available ? "available" : "unavailable").padEnd(12)} ${c.reason}`,
    ),
    "versions",
    ...Object.entries({ ...report.versions, ...choice.versions })
      .filter(([k]) => k !== "backend")
      .map(([k, v]) => `  ${k.padEnd(20)} ${v}`),
    ...(spawner === undefined ? [] : [`spawner   ${spawner.kind}`, `  path    ${spawner.detail}`]),
  ]
  return `${lines.join("\n")}\n`
}

export const doctor: CommandSpec = {
  summary: "show the compute backend a run gets here and why, each candidate, the GPUs and versions",
  usage: "[--backend tensorflow|webgpu|wasm|cpu] [--allow-software-gpu] [--json]",
  options: {
    backend: {
      type: "string",
      placeholder: "NAME",
      help: "try this backend first (tensorflow, webgpu, wasm, cpu)",
    },
    "allow-software-gpu": {
      type: "boolean",
      help: "accept a software WebGPU adapter (Mesa llvmpipe): for testing the WebGPU path, not for real work",
    },
    ...jsonOption,
  },
  run: (values, _positionals, ctx) =>
    Effect.gen(function* () {
      const prefer = str(values, "backend")
      if (prefer !== undefined && !NAMES.includes(prefer as BackendName))
        return yield* new UsageError({
          message: `unknown --backend "${prefer}"`,
          hint: `Use one of: ${NAMES.join(", ")}.`,
        })
      const options = {
        ...(prefer === undefined ? {} : { prefer: prefer as BackendName }),
        allowSoftwareGpu: values["allow-software-gpu"] === true,
        env: ctx.env,
      }
      // Loaded here, not at the top: the compute layer pulls in TensorFlow.js, which no other command needs.
      const compute = yield* Effect.promise(() => import("../compute/backend.js"))
      const { choice, report } = yield* Effect.promise(async () => {
        const report = await compute.describeBackends(options)
        const choice = await compute.initBackend(options)
        return { choice, report }
      }).pipe(Effect.ensuring(Effect.promise(() => compute.releaseBackend())))
      const spawner = describeSpawner(ctx.spawner, ctx.env)
      if (values.json === true) {
        ctx.stdout.write(
          `${JSON.stringify({
            backend: choice,
            fingerprint: compute.backendFingerprint(choice),
            gpus: report.gpus,
            candidates: report.candidates,
            versions: report.versions,
            spawner,
          })}\n`,
        )
        return 0
      }
      ctx.stdout.write(formatDoctor(choice, report, spawner))
      return 0
    }),
}
