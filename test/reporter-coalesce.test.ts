/**
 * The coalescing sink under the run reporter: text after a quiet spell goes out at the end of the turn, text
 * within `INTERVAL_MS` of the last write waits for the interval, nothing is held past 64 kB or a flush.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest"
import { coalescing, INTERVAL_MS } from "../src/reporters/coalesce.js"

describe("coalescing", () => {
  beforeEach(() => {
    vi.useFakeTimers()
  })
  afterEach(() => {
    vi.useRealTimers()
  })

  it("writes what one turn wrote in one write, at the end of the turn", () => {
    const writes: string[] = []
    const sink = coalescing({ write: (t) => void writes.push(t) })
    sink.write("a\n")
    sink.write("b\n")
    expect(writes).toEqual([])
    vi.advanceTimersToNextTimer() // the turn's end
    expect(writes).toEqual(["a\nb\n"])
  })

  it("holds text written soon after a write until the interval has passed, then writes it at once", () => {
    const writes: string[] = []
    const sink = coalescing({ write: (t) => void writes.push(t) })
    sink.write("a\n")
    vi.advanceTimersToNextTimer()
    vi.advanceTimersByTime(10)
    sink.write("b\n")
    sink.write("c\n")
    vi.advanceTimersByTime(INTERVAL_MS - 11)
    expect(writes).toEqual(["a\n"])
    vi.advanceTimersByTime(1)
    expect(writes).toEqual(["a\n", "b\nc\n"])
    // After a quiet spell, the next text goes out at the end of its turn again.
    vi.advanceTimersByTime(INTERVAL_MS)
    sink.write("d\n")
    vi.advanceTimersToNextTimer()
    expect(writes).toEqual(["a\n", "b\nc\n", "d\n"])
  })

  it("writes at once past 64 kB, and on flush", () => {
    const writes: string[] = []
    const sink = coalescing({ write: (t) => void writes.push(t) })
    sink.write("x".repeat(64 * 1024))
    expect(writes.map((w) => w.length)).toEqual([64 * 1024])
    sink.write("tail\n")
    sink.flush()
    sink.flush() // nothing pending: nothing written
    expect(writes.slice(1)).toEqual(["tail\n"])
    vi.runAllTimers() // the cancelled timer writes nothing more
    expect(writes).toHaveLength(2)
  })
})
