/**
 * Counted resource slots. A stage holds its slots only while its process runs, never while it waits for its
 * upstream stages (waiting with a permit held deadlocks a full pool).
 *
 * Waiters are served first come, first served, each woken only when its slots are free: Effect's semaphore
 * wakes every waiter on each release to let them race, which with a fan-out of 1,000 stages waiting for two
 * slots made the scheduling itself quadratic (a 1,000-stage fan-out ran twice as long as a 1,000-stage chain).
 * Strict FIFO also means a stage asking for several slots is never starved by smaller ones behind it.
 */
import { Effect } from "effect"
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

interface Waiter {
  readonly cpu: number
  readonly gpu: number
  /** hands the waiter its slots (already taken from the pools) */
  readonly wake: (gpuIds: ReadonlyArray<number>) => void
}

/** The slots a stage asks for in a run with `gpus` GPUs: `gpuWhenPresent` becomes one GPU when there is any. */
export const effectiveResources = (res: Resources, gpus: number): Resources =>
  res.gpuWhenPresent === true && res.gpu === 0 && gpus > 0 ? { cpu: res.cpu, gpu: 1 } : res

/** Make the pools: `jobs` CPU slots and `gpus` GPU slots (device ids 0..gpus-1). */
export const makeSlots = (jobs: number, gpus: number): Effect.Effect<Slots> =>
  Effect.sync(() => {
    let freeCpu = jobs
    let freeGpus: number[] = Array.from({ length: gpus }, (_, i) => i)
    const queue: Waiter[] = []

    const fits = (cpu: number, gpu: number) => cpu <= freeCpu && gpu <= freeGpus.length
    const take = (cpu: number, gpu: number): ReadonlyArray<number> => {
      freeCpu -= cpu
      const ids = freeGpus.slice(0, gpu)
      freeGpus = freeGpus.slice(gpu)
      return ids
    }
    /** Grant the waiters at the head of the queue whose slots are free, in order. */
    const grant = () => {
      while (queue.length > 0 && fits(queue[0]!.cpu, queue[0]!.gpu)) {
        const w = queue.shift()!
        w.wake(take(w.cpu, w.gpu))
      }
    }
    const giveBack = (cpu: number, ids: ReadonlyArray<number>) => {
      freeCpu += cpu
      freeGpus = [...freeGpus, ...ids].sort((a, b) => a - b)
      grant()
    }

    // A waiter is a plain `Effect.async` resumed by `grant`: on a fan-out of many small stages most of them wait,
    // and a Deferred with an interruption handler each was a measurable share of the executor's work.
    const acquire = (cpu: number, gpu: number): Effect.Effect<ReadonlyArray<number>> =>
      Effect.suspend(() => {
        if (queue.length === 0 && fits(cpu, gpu)) return Effect.succeed(take(cpu, gpu))
        return Effect.async<ReadonlyArray<number>>((resume) => {
          let granted: ReadonlyArray<number> | undefined
          const waiter: Waiter = {
            cpu,
            gpu,
            wake: (ids) => {
              granted = ids
              resume(Effect.succeed(ids))
            },
          }
          queue.push(waiter)
          // Interrupted while waiting: leave the queue (the head may have changed), or, granted in the same
          // instant, give the slots back.
          return Effect.sync(() => {
            const at = queue.indexOf(waiter)
            if (at >= 0) {
              queue.splice(at, 1)
              grant()
            } else if (granted !== undefined) giveBack(cpu, granted)
          })
        })
      })

    const withSlots = <A, E, R>(
      res: Resources,
      use: (gpuIds: ReadonlyArray<number>) => Effect.Effect<A, E, R>,
    ): Effect.Effect<A, E, R> => {
      // A stage asking for more than the run has gets all of it rather than waiting forever.
      const cpu = Math.min(res.cpu, jobs)
      const gpu = Math.min(res.gpu, gpus)
      // Waiting for slots stays interruptible (Ctrl-C while stages queue); once granted, they are always released.
      return Effect.uninterruptibleMask((restore) =>
        Effect.flatMap(restore(acquire(cpu, gpu)), (ids) =>
          restore(use(ids)).pipe(Effect.ensuring(Effect.sync(() => giveBack(cpu, ids)))),
        ),
      )
    }
    return { jobs, gpus, withSlots }
  })
