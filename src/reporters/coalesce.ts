/**
 * A sink that gathers what the run reporter writes and writes it in few writes. On a run of many short stages
 * the reporter prints two lines per stage, and each write to a piped stderr is a system call that also wakes
 * the reader: profiled on a 1,000-stage run, one write per turn of the event loop still cost ~0.2 ms each, a
 * twentieth of the orchestrator's time.
 *
 * So writes are paced: text written after a quiet spell goes out at the end of the current turn (a stage that
 * starts after a long one is shown at once), and text written within `INTERVAL_MS` of the last write waits
 * until that interval has passed. Nothing waits longer than that (or past 64 kB); `flush` writes what is
 * pending now, for the end of a run.
 */
import type { Sink } from "./text.js"

/** The most text held before it is written at once. */
const MAX_PENDING = 64 * 1024
/** The least time between two writes, unless 64 kB are pending. */
export const INTERVAL_MS = 50

export const coalescing = (out: Sink): Sink & { readonly flush: () => void } => {
  let pending = ""
  /** cancels the scheduled write, if one is scheduled */
  let cancel: (() => void) | undefined
  /** when the last write went out (-Infinity: never) */
  let last = Number.NEGATIVE_INFINITY
  const flush = () => {
    cancel?.()
    cancel = undefined
    if (pending === "") return
    const text = pending
    pending = ""
    last = performance.now()
    out.write(text)
  }
  return {
    write: (text) => {
      pending += text
      if (pending.length >= MAX_PENDING) flush()
      else if (cancel === undefined) {
        const wait = last + INTERVAL_MS - performance.now()
        if (wait <= 0) {
          const immediate = setImmediate(flush)
          cancel = () => clearImmediate(immediate)
        } else {
          // A timer that is all that is left does not hold the process: the run flushes when it ends.
          const timeout = setTimeout(flush, Math.ceil(wait)).unref()
          cancel = () => clearTimeout(timeout)
        }
      }
    },
    flush,
  }
}
