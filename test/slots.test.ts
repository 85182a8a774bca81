import { Deferred, Effect, Fiber } from "effect"
import { describe, expect, it } from "vitest"
import { effectiveResources, makeSlots } from "../src/slots.js"

const cpu = (n: number) => ({ cpu: n, gpu: 0 })

describe("slots", () => {
  it("serve waiters first come, first served: a big request is not starved by small ones behind it", async () => {
    const order = await Effect.runPromise(
      Effect.gen(function* () {
        const slots = yield* makeSlots(2, 0)
        const log: string[] = []
        const gate = yield* Deferred.make<void>()
        // Holds one slot until the gate opens.
        const holder = yield* Effect.fork(slots.withSlots(cpu(1), () => Deferred.await(gate)))
        yield* Effect.yieldNow()
        const big = yield* Effect.fork(slots.withSlots(cpu(2), () => Effect.sync(() => log.push("big"))))
        yield* Effect.yieldNow()
        const small = yield* Effect.fork(slots.withSlots(cpu(1), () => Effect.sync(() => log.push("small"))))
        yield* Effect.yieldNow()
        expect(log).toEqual([]) // the free slot is not given to "small" ahead of "big"
        yield* Deferred.succeed(gate, undefined)
        yield* Fiber.join(holder)
        yield* Fiber.join(big)
        yield* Fiber.join(small)
        return log
      }),
    )
    expect(order).toEqual(["big", "small"])
  })

  it("give each GPU stage its own device ids, and take them back", async () => {
    const ids = await Effect.runPromise(
      Effect.gen(function* () {
        const slots = yield* makeSlots(4, 2)
        const seen: Array<ReadonlyArray<number>> = []
        const gate = yield* Deferred.make<void>()
        const hold = (gpu: number) =>
          Effect.fork(
            slots.withSlots({ cpu: 1, gpu }, (g) =>
              Effect.sync(() => seen.push(g)).pipe(Effect.zipRight(Deferred.await(gate))),
            ),
          )
        const a = yield* hold(1)
        const b = yield* hold(1)
        const both = yield* hold(2) // waits until a and b give their GPUs back
        yield* Effect.yieldNow()
        expect(seen).toEqual([[0], [1]])
        yield* Deferred.succeed(gate, undefined)
        yield* Fiber.join(a)
        yield* Fiber.join(b)
        yield* Fiber.join(both)
        return seen
      }),
    )
    expect(ids).toEqual([[0], [1], [0, 1]])
  })

  it("let a waiter be interrupted without losing a slot", async () => {
    const ran = await Effect.runPromise(
      Effect.gen(function* () {
        const slots = yield* makeSlots(1, 0)
        const gate = yield* Deferred.make<void>()
        const holder = yield* Effect.fork(slots.withSlots(cpu(1), () => Deferred.await(gate)))
        yield* Effect.yieldNow()
        const waiter = yield* Effect.fork(slots.withSlots(cpu(1), () => Effect.succeed("never")))
        yield* Effect.yieldNow()
        yield* Fiber.interrupt(waiter)
        yield* Deferred.succeed(gate, undefined)
        yield* Fiber.join(holder)
        // Both slots' worth of work still gets through: the interrupted waiter took nothing with it.
        return yield* slots.withSlots(cpu(1), () => Effect.succeed("ran"))
      }),
    )
    expect(ran).toBe("ran")
  })
})

describe("effectiveResources", () => {
  it("gives a compute kind one GPU when the run has any, and none otherwise", () => {
    const auto = { cpu: 1, gpu: 0, gpuWhenPresent: true }
    expect(effectiveResources(auto, 2)).toEqual({ cpu: 1, gpu: 1 })
    expect(effectiveResources(auto, 0)).toBe(auto)
    const plain = { cpu: 1, gpu: 0 }
    expect(effectiveResources(plain, 2)).toBe(plain)
  })
})
