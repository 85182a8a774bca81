/**
 * `pipeline runs` and `pipeline show RUN`: the run records under `runs/`.
 */
import { join } from "node:path"
import { Effect } from "effect"
import { UsageError } from "../errors.js"
import { processAlive } from "../processes.js"
import { listRunRecords, type RunRecord } from "../run-record.js"
import type { CommandSpec } from "./context.js"
import { jsonOption } from "./options.js"
import { projectRootOf, rootOption } from "./root.js"

/**
 * A run killed without a chance to write its end stays `running` with no end time; it is `interrupted` once
 * its process is gone (a record from before pids were recorded cannot tell).
 */
const isInterrupted = (r: RunRecord): boolean | undefined =>
  r.status !== "running" || r.ended_at !== null
    ? false
    : typeof r.pid === "number"
      ? !processAlive(r.pid)
      : undefined

const shownStatus = (r: RunRecord): string => {
  const interrupted = isInterrupted(r)
  return interrupted === undefined ? "running or interrupted" : interrupted ? "interrupted" : r.status
}

export const runs: CommandSpec = {
  summary: "list run records, newest last",
  usage: "[--json]",
  options: { ...jsonOption, ...rootOption },
  run: (values, _positionals, ctx) =>
    Effect.gen(function* () {
      const root = yield* projectRootOf(values, ctx)
      const records = yield* Effect.promise(() => listRunRecords(join(root, "runs")))
      if (values.json === true) {
        ctx.stdout.write(
          `${JSON.stringify({ runs: records.map((r) => ({ id: r.id, name: r.name, status: r.status, interrupted: isInterrupted(r) ?? null, started_at: r.started_at, ended_at: r.ended_at })) })}\n`,
        )
        return 0
      }
      if (records.length === 0) ctx.stderr.write("No runs yet.\n")
      for (const r of records) {
        const counts = new Map<string, number>()
        for (const s of Object.values(r.stages)) counts.set(s.status, (counts.get(s.status) ?? 0) + 1)
        const summary = [...counts].map(([s, n]) => `${n} ${s}`).join(", ")
        ctx.stdout.write(`${r.id}  ${r.name.padEnd(16)} ${shownStatus(r).padEnd(10)} ${summary}\n`)
      }
      return 0
    }),
}

export const show: CommandSpec = {
  summary: "print one run record (an id, a unique prefix of one, or `last`)",
  usage: "RUN [--json]",
  options: { ...jsonOption, ...rootOption },
  run: (values, positionals, ctx) =>
    Effect.gen(function* () {
      const root = yield* projectRootOf(values, ctx)
      const records = yield* Effect.promise(() => listRunRecords(join(root, "runs")))
      const want = positionals[0]
      if (want === undefined)
        return yield* new UsageError({
          message: "which run?",
          hint: "Pass a run id from `pipeline runs`, or `last`.",
        })
      const matches = want === "last" ? records.slice(-1) : records.filter((r) => r.id.startsWith(want))
      const [record] = matches
      if (matches.length !== 1 || !record)
        return yield* new UsageError({
          message:
            matches.length === 0 ? `no run matches "${want}"` : `"${want}" matches ${matches.length} runs`,
          hint: "Pass a run id (or a unique prefix of one) from `pipeline runs`.",
        })
      if (values.json === true) {
        ctx.stdout.write(`${JSON.stringify(record, null, 2)}\n`)
        return 0
      }
      ctx.stdout.write(`run ${record.id}: ${record.name} (${record.pipeline})\n`)
      ctx.stdout.write(
        `status ${shownStatus(record)}, started ${record.started_at}${record.ended_at ? `, ended ${record.ended_at}` : ""}\n`,
      )
      ctx.stdout.write(`params ${JSON.stringify(record.params)}\n`)
      for (const [name, s] of Object.entries(record.stages)) {
        ctx.stdout.write(
          `  ${s.status.padEnd(9)} ${name}  ${s.duration_ms}ms${s.reason ? `  ${s.reason}` : ""}${s.log ? `  (log: ${s.log})` : ""}\n`,
        )
      }
      return 0
    }),
}
