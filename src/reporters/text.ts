/**
 * Human reporters: render run events as lines on stderr. `plain` writes one line per event (logs, CI);
 * `tty` adds colour and shows progress events on one line that is rewritten in place.
 */
import type { RunEvent } from "../events.js"
import type { StageStatus } from "../status.js"

/** Something that writes text (stderr, or a buffer in tests). */
export interface Sink {
  write(text: string): void
}

const formatDuration = (ms: number): string =>
  ms < 1000
    ? `${ms}ms`
    : ms < 60_000
      ? `${(ms / 1000).toFixed(1)}s`
      : `${Math.floor(ms / 60_000)}m${Math.round((ms % 60_000) / 1000)}s`

const formatValue = (v: unknown): string =>
  typeof v === "number"
    ? Number.isInteger(v)
      ? String(v)
      : v.toPrecision(4)
    : typeof v === "string"
      ? v
      : JSON.stringify(v)

/** `step 10/100 loss=0.4200`: a progress object as one short line. */
export const formatProgress = (data: Readonly<Record<string, unknown>>): string => {
  const parts: string[] = []
  const { step, total, ...rest } = data
  if (step !== undefined)
    parts.push(
      total !== undefined ? `step ${formatValue(step)}/${formatValue(total)}` : `step ${formatValue(step)}`,
    )
  for (const [k, v] of Object.entries(rest)) parts.push(`${k}=${formatValue(v)}`)
  return parts.join(" ")
}

const COLORS: Record<StageStatus, number> = {
  pending: 90,
  running: 36,
  ran: 32,
  cached: 90,
  restored: 34,
  failed: 31,
  skipped: 33,
  cancelled: 33,
}

const PROGRESS_EVERY_MS = 2000

const colour = (on: boolean, code: number, text: string) => (on ? `\x1b[${code}m${text}\x1b[0m` : text)

/** Make a reporter writing to `sink`; `tty` turns on colour and in-place progress. */
export const textReporter = (sink: Sink, tty: boolean) => {
  let transient = false
  const counts = new Map<StageStatus, number>()
  const clear = () => {
    if (transient) sink.write("\r\x1b[K")
    transient = false
  }
  const line = (text: string) => {
    clear()
    sink.write(`${text}\n`)
  }
  /** The line an event prints, if any. */
  const render = (e: RunEvent): string | undefined => {
    switch (e.type) {
      case "run-started":
        return `run ${e.runId}: ${e.pipeline} (${e.stages.length} stage${e.stages.length === 1 ? "" : "s"})`
      case "interrupted-run":
        return (
          `note: ${e.runId === undefined ? "a run" : `run ${e.runId}`} (pid ${e.pid}) was killed before it finished; took over its lock` +
          (e.ended.length === 0
            ? ""
            : `, and ended the stage processes it left running: ${e.ended.map((p) => `${p.stage} (group ${p.pgid})`).join(", ")}`)
        )
      case "stage-started":
        return `${colour(tty, COLORS.running, "running  ")} ${e.stage}${e.attempt > 1 ? ` (attempt ${e.attempt})` : ""}`
      case "stage-output":
        return `${colour(tty, 90, `[${e.stage}]`)} ${e.line}`
      case "stage-progress":
        return `${colour(tty, 90, `[${e.stage}]`)} ${formatProgress(e.data)}`
      case "out-saved": {
        const short = e.digest.slice(0, 12)
        return (
          `${colour(tty, 33, "saved    ")} ${e.path} (stage ${e.stage}) matched nothing in the store and was saved before ` +
          `being replaced; get it back with: pipeline recover ${short} --to ${e.path}.edited`
        )
      }
      case "stage-retry":
        return `${colour(tty, 33, "retrying ")} ${e.stage}: attempt ${e.attempt} failed (${e.reason}); next in ${formatDuration(e.delayMs)}`
      case "stage-finished": {
        counts.set(e.status, (counts.get(e.status) ?? 0) + 1)
        const word = colour(tty, COLORS[e.status], e.status.padEnd(9))
        const time = e.status === "ran" || e.status === "failed" ? ` ${formatDuration(e.durationMs)}` : ""
        return `${word} ${e.stage}${time}${e.reason && e.status !== "cached" ? `: ${e.reason}` : ""}`
      }
      case "run-finished": {
        const total = [...counts.values()].reduce((a, b) => a + b, 0)
        const summary = [...counts.entries()].map(([s, n]) => `${n} ${s}`).join(", ")
        if (e.status === "succeeded" && total > 0 && counts.get("cached") === total)
          return `Nothing to do: all ${total} stage${total === 1 ? " is" : "s are"} up to date.`
        const statusText = colour(
          tty,
          e.status === "succeeded" ? 32 : e.status === "failed" ? 31 : 33,
          e.status,
        )
        return `run ${e.runId} ${statusText} in ${formatDuration(e.durationMs)}: ${summary || "no stages"}`
      }
    }
  }
  /** when each stage's progress was last printed, for plain output */
  const lastProgress = new Map<string, number>()
  /**
   * Plain output (a log, CI) gets a stage's first step line, its last (step = total), and one every
   * PROGRESS_EVERY_MS between: a training loop reporting every step would otherwise flood the log. Events
   * without a `step` (an epoch's summary, a resume, a warning) are rare and always shown.
   */
  const showProgress = (e: Extract<RunEvent, { type: "stage-progress" }>): boolean => {
    if (e.data.step === undefined) return true
    const now = Date.now()
    const last = lastProgress.get(e.stage)
    const final = e.data.step === e.data.total
    if (last !== undefined && !final && now - last < PROGRESS_EVERY_MS) return false
    lastProgress.set(e.stage, now)
    return true
  }
  return (e: RunEvent): void => {
    const text = render(e)
    if (text === undefined) return
    if (e.type === "stage-progress" && !tty && !showProgress(e)) return
    if (e.type === "stage-progress" && tty && e.data.step !== undefined) {
      // In a terminal, step progress rewrites one line instead of scrolling; other events stay.
      clear()
      sink.write(text.slice(0, (process.stderr.columns ?? 100) + 10))
      transient = true
    } else line(text)
  }
}
