/**
 * Counted resource slots. A stage holds its slots only while its process runs, never while it waits for its
 * upstream stages (waiting with a permit held deadlocks a full pool). Slots are always taken in the same
 * order, CPU then GPU, so two stages can never each hold what the other waits for.
 */
import { Effect, Ref } from "effect"
import type { Resources } from "./model.js"

/** The slot pools of one run. */
export interface Slots {
  readonly jobs: number
  readonly gpus: number
  /** Run `use` holding the stage's slots; it is given the device ids of its GPUs. */
  readonly withSlots: <A, E, R>(
    res: Resources,
    use: (gpuIds: ReadonlyArray<number>) => Effect.Effect<A, E, R>,
  ) => Effect.Effect<A, E, R>
}

/** Make the pools: `jobs` CPU slots and `gpus` GPU slots (device ids 0..gpus-1). */
export const makeSlots = (jobs: number, gpus: number): Effect.Effect<Slots> =>
  Effect.gen(function* () {
    const cpu = yield* Effect.makeSemaphore(jobs)
    const gpu = yield* Effect.makeSemaphore(gpus)
    const free = yield* Ref.make<ReadonlyArray<number>>(Array.from({ length: gpus }, (_, i) => i))
    const takeIds = (n: number) => Ref.modify(free, (ids) => [ids.slice(0, n), ids.slice(n)] as const)
    const giveIds = (ids: ReadonlyArray<number>) =>
      Ref.update(free, (rest) => [...rest, ...ids].sort((a, b) => a - b))
    const withSlots = <A, E, R>(
      res: Resources,
      use: (gpuIds: ReadonlyArray<number>) => Effect.Effect<A, E, R>,
    ): Effect.Effect<A, E, R> => {
      // A stage asking for more CPUs than the run has gets them all rather than waiting forever.
      const nCpu = Math.min(res.cpu, jobs)
      const nGpu = Math.min(res.gpu, gpus)
      const withGpu = Effect.acquireUseRelease(takeIds(nGpu), use, giveIds)
      return cpu.withPermits(nCpu)(gpu.withPermits(nGpu)(withGpu))
    }
    return { jobs, gpus, withSlots }
  })
