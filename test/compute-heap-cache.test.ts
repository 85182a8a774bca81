/**
 * The wasm heap cache (src/compute/heap-cache.ts): its rules on a fake allocator, then a real training step on
 * the wasm backend that, once warm, allocates no new large block and leaves the heap at its size.
 */
import * as tf from "@tensorflow/tfjs"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import {
  CACHE_LIMIT_FACTOR,
  cacheHeapBlocks,
  createHeapCache,
  MIN_CACHED_BYTES,
  type RawAllocator,
  sizeClass,
} from "../src/compute/heap-cache.js"
import { asWasm } from "../src/compute/kernels/wasm-heap.js"
import { startWasm } from "../src/compute/wasm.js"
import {
  type BertModel,
  bertConfig,
  classificationLoss,
  createBert,
  disposeBert,
  trainableVariables,
} from "../src/model/index.js"

const KiB = 1024
const MiB = 1024 * KiB

/** A bump allocator with a capacity, recording what it was asked. */
const fakeRaw = (capacity = Number.POSITIVE_INFINITY) => {
  let top = 16
  let used = 0
  const sizes = new Map<number, number>()
  const calls: Array<string> = []
  const raw: RawAllocator = {
    malloc: (bytes) => {
      calls.push(`malloc ${bytes}`)
      if (used + bytes > capacity) return 0
      const p = top
      top += bytes
      used += bytes
      sizes.set(p, bytes)
      return p
    },
    free: (p) => {
      calls.push(`free ${p}`)
      used -= sizes.get(p) ?? 0
      sizes.delete(p)
    },
  }
  return { raw, calls }
}

describe("size classes", () => {
  it("keeps small sizes and rounds large ones up to eight steps per power of two", () => {
    expect(sizeClass(100)).toBe(100)
    expect(sizeClass(MIN_CACHED_BYTES - 1)).toBe(MIN_CACHED_BYTES - 1)
    expect(sizeClass(MIN_CACHED_BYTES)).toBe(MIN_CACHED_BYTES)
    expect(sizeClass(100_000)).toBe(106_496) // 13 steps of 8 KiB
    expect(sizeClass(MiB)).toBe(MiB)
    expect(sizeClass(MiB + 1)).toBe(MiB + 128 * KiB)
  })
})

describe("the caching allocator", () => {
  it("hands a freed large block out again for a request of the same class, without touching malloc", () => {
    const { raw, calls } = fakeRaw()
    const cache = createHeapCache(raw)
    const a = cache.malloc(100_000)
    cache.free(a)
    expect(cache.malloc(99_000)).toBe(a)
    expect(calls).toEqual(["malloc 106496"])
    expect(cache.stats()).toEqual({
      hits: 1,
      misses: 1,
      liveBytes: 106_496,
      cachedBytes: 0,
      peakBytes: 106_496,
    })
  })

  it("passes small blocks and pointers it did not hand out straight through", () => {
    const { raw, calls } = fakeRaw()
    const cache = createHeapCache(raw)
    const small = cache.malloc(100)
    cache.free(small)
    cache.free(12_345)
    expect(calls).toEqual(["malloc 100", `free ${small}`, "free 12345"])
    expect(cache.stats().hits).toBe(0)
  })

  it("gives back the least recently freed blocks when live and cached bytes would pass the limit", () => {
    const { raw, calls } = fakeRaw()
    const cache = createHeapCache(raw)
    const a = cache.malloc(MiB)
    cache.free(a)
    const b = cache.malloc(MiB + 256 * KiB)
    cache.free(b)
    // Peak 1.25 MiB, limit 2.5 MiB: 2.25 MiB cached plus a new 1.125 MiB class is over by 0.875 MiB.
    expect(CACHE_LIMIT_FACTOR).toBe(2)
    const c = cache.malloc(MiB + 128 * KiB)
    expect(calls.slice(2)).toEqual([`free ${a}`, `malloc ${MiB + 128 * KiB}`])
    expect(cache.stats().cachedBytes).toBe(MiB + 256 * KiB)
    cache.free(c)
    cache.release()
    expect(cache.stats().cachedBytes).toBe(0)
    expect(calls.slice(-2)).toEqual([`free ${b}`, `free ${c}`])
  })

  it("gives the whole cache back and retries when malloc fails", () => {
    const { raw, calls } = fakeRaw(3 * MiB)
    const cache = createHeapCache(raw)
    const a = cache.malloc(2 * MiB)
    cache.free(a)
    const b = cache.malloc(2 * MiB + 512 * KiB)
    expect(b).not.toBe(0)
    expect(calls).toEqual([
      `malloc ${2 * MiB}`,
      `malloc ${2 * MiB + 512 * KiB}`,
      `free ${a}`,
      `malloc ${2 * MiB + 512 * KiB}`,
    ])
    // Still too big after giving everything back: malloc's 0 reaches the caller.
    expect(cache.malloc(2 * MiB)).toBe(0)
  })
})

describe("on the wasm backend", () => {
  let model: BertModel
  beforeAll(async () => {
    const started = await startWasm(tf)
    expect(started.ok).toBe(true)
    model = createBert(
      bertConfig({
        vocab_size: 500,
        hidden_size: 64,
        num_hidden_layers: 1,
        num_attention_heads: 2,
        intermediate_size: 256,
        max_position_embeddings: 64,
      }),
      { seed: 1 },
    )
  })
  afterAll(async () => {
    disposeBert(model)
    await tf.setBackend("cpu")
  })

  it("reuses a warm training step's blocks: no new large allocation, no heap growth", () => {
    const backend = asWasm(tf.backend())
    const cache = cacheHeapBlocks(backend.wasm)
    expect(cacheHeapBlocks(backend.wasm)).toBe(cache)
    const ids = tf.tensor2d(
      Array.from({ length: 8 * 64 }, (_, i) => 5 + ((i * 37) % 490)),
      [8, 64],
      "int32",
    )
    const labels = tf.tensor1d([0, 1, 1, 0, 1, 0, 0, 1], "int32")
    const optimizer = tf.train.adam(1e-3)
    const step = (seed: number) => {
      const loss = optimizer.minimize(
        () => classificationLoss(model, { inputIds: ids, labels }, { dropoutSeed: seed }),
        true,
        trainableVariables(model),
      )!
      loss.dataSync()
      loss.dispose()
    }
    step(1)
    step(2)
    const before = cache.stats()
    const heap = backend.wasm.HEAPU8.length
    step(3)
    const after = cache.stats()
    expect(after.misses - before.misses).toBe(0)
    // Embeddings, keys, values, attention maps and their gradients: dozens of large blocks per step (85 with
    // the last block computing only the first tokens' rows; over a hundred when it computed every row).
    expect(after.hits - before.hits).toBeGreaterThan(50)
    expect(backend.wasm.HEAPU8.length).toBe(heap)
    tf.dispose([ids, labels])
    optimizer.dispose()
  })
})
