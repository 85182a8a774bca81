/** The coalescing sink under the run reporter: one write per turn of the event loop, nothing held longer. */
import { describe, expect, it } from "vitest"
import { coalescing } from "../src/reporters/coalesce.js"

const nextTurn = () => new Promise<void>((r) => setImmediate(r))

describe("coalescing", () => {
  it("writes what one turn wrote in one write, at the end of the turn", async () => {
    const writes: string[] = []
    const sink = coalescing({ write: (t) => void writes.push(t) })
    sink.write("a\n")
    sink.write("b\n")
    expect(writes).toEqual([])
    await nextTurn()
    expect(writes).toEqual(["a\nb\n"])
    sink.write("c\n")
    await nextTurn()
    expect(writes).toEqual(["a\nb\n", "c\n"])
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
  })
})
