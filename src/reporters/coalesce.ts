/**
 * A sink that gathers the text written during one turn of the event loop and writes it at once. On a run of
 * many short stages the reporter prints two lines per stage, and each write to a piped stderr is a system call
 * that also wakes the reader: gathered, a burst of lines costs one. Nothing waits longer than the current turn
 * (or 64 kB); `flush` writes what is pending now, for the end of a run.
 */
import type { Sink } from "./text.js"

/** The most text held before it is written without waiting for the end of the turn. */
const MAX_PENDING = 64 * 1024

export const coalescing = (out: Sink): Sink & { readonly flush: () => void } => {
  let pending = ""
  let scheduled = false
  const flush = () => {
    scheduled = false
    if (pending === "") return
    const text = pending
    pending = ""
    out.write(text)
  }
  return {
    write: (text) => {
      pending += text
      if (pending.length >= MAX_PENDING) flush()
      else if (!scheduled) {
        scheduled = true
        setImmediate(flush)
      }
    },
    flush,
  }
}
