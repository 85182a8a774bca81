/**
 * A caching allocator for the wasm backend's tensor memory.
 *
 * tfjs-backend-wasm gives every tensor its own `malloc` and `free`s it on dispose. A training step at sequence
 * length 128 allocates ~600 blocks of 64 KiB to 32 MiB (activations, their gradients, attention maps) and frees
 * nearly all of them by its end; the next step asks for the same sizes again, in a slightly different order
 * relative to the C++ side's own small allocations (XNNPACK operators and packed weights). Emscripten's
 * dlmalloc cannot fit the new requests into the holes the last step left often enough, so the heap, which never
 * shrinks, grew by 200-700 MiB per step (peak live tensors: ~750 MiB at batch 32, d 128) and hit the 4 GiB cap
 * after a few steps.
 *
 * Like PyTorch's CUDA caching allocator, we keep freed large blocks in per-size free lists and hand them out
 * again for the next request of the same size class, so from the second step on a step reuses the first step's
 * blocks and the heap stays at its first-step size (measured: 913 MiB flat, where it reached 2.1 GiB after five
 * steps before). Size classes are eight per power of two (a block is at most 12.5% larger than asked), so
 * masked-LM batches with slightly different numbers of masked tokens share blocks. Live and cached blocks
 * together stay below `CACHE_LIMIT_FACTOR` times the live peak: past that, a request the lists cannot serve
 * first gives back the least recently freed blocks, so a workload whose sizes keep changing does not pile up
 * blocks of every size. When `malloc` fails, the whole cache is given back and the request retried once.
 *
 * Memory contents are never assumed: a reused block holds old data, exactly as a recycled dlmalloc block does.
 */
import type { WasmModule } from "./kernels/wasm-heap.js"

/** Blocks below this size go straight to dlmalloc, which serves small requests well from its bins. */
export const MIN_CACHED_BYTES = 64 * 1024

/**
 * Live and cached blocks together stay below this multiple of the live peak. Evicting sooner (at 1x) made a
 * training step miss a third of its requests: least-recently-freed is the wrong victim for a workload that
 * repeats the same allocation sequence every step.
 */
export const CACHE_LIMIT_FACTOR = 2

/** The size class of a request: rounded up to one of eight steps per power of two. */
export const sizeClass = (bytes: number): number => {
  if (bytes < MIN_CACHED_BYTES) return bytes
  const step = 2 ** (Math.floor(Math.log2(bytes)) - 3)
  return Math.ceil(bytes / step) * step
}

/** What the allocator underneath does: Emscripten's `_malloc` and `_free`. */
export interface RawAllocator {
  malloc(bytes: number): number
  free(pointer: number): void
}

/** Counters, for tests and benchmarks. */
export interface HeapCacheStats {
  /** requests served from the free lists */
  readonly hits: number
  /** large requests that went to malloc */
  readonly misses: number
  /** bytes in blocks handed out and not yet freed */
  readonly liveBytes: number
  /** bytes in the free lists */
  readonly cachedBytes: number
  /** the most `liveBytes` has been */
  readonly peakBytes: number
}

/** A caching allocator over `raw`: `malloc`/`free` with the same contract. */
export interface HeapCache extends RawAllocator {
  stats(): HeapCacheStats
  /** Give every cached block back to `raw`. */
  release(): void
}

/** Build the allocator (pure logic over `raw`; see `cacheHeapBlocks` for putting it under a wasm backend). */
export const createHeapCache = (raw: RawAllocator): HeapCache => {
  /** the class of every block we handed out, by pointer */
  const handedOut = new Map<number, number>()
  /** free blocks by class */
  const lists = new Map<number, Array<number>>()
  /** free blocks, least recently freed first (a Map keeps insertion order) */
  const byAge = new Map<number, number>()
  let live = 0
  let cached = 0
  let peak = 0
  let hits = 0
  let misses = 0

  const evict = (pointer: number, bytes: number): void => {
    byAge.delete(pointer)
    const list = lists.get(bytes)!
    list.splice(list.lastIndexOf(pointer), 1)
    cached -= bytes
    raw.free(pointer)
  }
  /** Give back the oldest free blocks until at least `bytes` are returned (or none are left). */
  const evictOldest = (bytes: number): void => {
    let returned = 0
    for (const [pointer, size] of byAge) {
      if (returned >= bytes) break
      evict(pointer, size)
      returned += size
    }
  }
  const release = (): void => evictOldest(Number.POSITIVE_INFINITY)

  const malloc = (bytes: number): number => {
    const size = sizeClass(bytes)
    if (size < MIN_CACHED_BYTES) return raw.malloc(bytes)
    const pointer = lists.get(size)?.pop()
    if (pointer !== undefined) {
      hits++
      byAge.delete(pointer)
      cached -= size
    } else {
      misses++
      // Cache plus live blocks stay within twice the live peak: make room for this one first.
      const over = live + cached + size - CACHE_LIMIT_FACTOR * Math.max(peak, live + size)
      if (over > 0) evictOldest(over)
      let fresh = raw.malloc(size)
      if (fresh === 0 && cached > 0) {
        release()
        fresh = raw.malloc(size)
      }
      // 0 is malloc's failure: the caller (tfjs, `assertAllocated`) sees it as it would without us.
      if (fresh === 0) return 0
      return handOut(fresh, size)
    }
    return handOut(pointer, size)
  }
  const handOut = (pointer: number, size: number): number => {
    handedOut.set(pointer, size)
    live += size
    if (live > peak) peak = live
    return pointer
  }

  const free = (pointer: number): void => {
    const size = handedOut.get(pointer)
    // Not ours: small blocks, and memory the C++ side allocated and tfjs frees (`makeOutput` with an offset).
    if (size === undefined) {
      raw.free(pointer)
      return
    }
    handedOut.delete(pointer)
    live -= size
    let list = lists.get(size)
    if (list === undefined) {
      list = []
      lists.set(size, list)
    }
    list.push(pointer)
    byAge.set(pointer, size)
    cached += size
  }

  return {
    malloc,
    free,
    release,
    stats: () => ({ hits, misses, liveBytes: live, cachedBytes: cached, peakBytes: peak }),
  }
}

interface MallocModule {
  _malloc(bytes: number): number
  _free(pointer: number): void
}

const installed = new WeakMap<object, HeapCache>()

/**
 * Put the caching allocator under a wasm backend's tensors (idempotent). tfjs-backend-wasm allocates through
 * `backend.wasm._malloc`/`_free`, looked up on each call, so replacing the module's two properties reroutes
 * every tensor; C++ code calls dlmalloc directly and is unaffected. Returns the cache, for its statistics.
 */
export const cacheHeapBlocks = (module: WasmModule): HeapCache => {
  const m = module as unknown as MallocModule
  let cache = installed.get(m)
  if (cache !== undefined) return cache
  // Emscripten binds its exports lazily: the first call of `_malloc` replaces the property with the wasm
  // export. Call both once so that what we wrap is the export, and nothing replaces our wrapper later.
  m._free(m._malloc(8))
  const rawMalloc = m._malloc
  const rawFree = m._free
  // `>>> 0`: _malloc answers a signed int32, and blocks above 2 GiB would look negative.
  cache = createHeapCache({ malloc: (bytes) => rawMalloc(bytes) >>> 0, free: (p) => rawFree(p) })
  m._malloc = cache.malloc
  m._free = cache.free
  m._free(m._malloc(8))
  if (m._malloc !== cache.malloc || m._free !== cache.free)
    throw new Error(
      "cacheHeapBlocks: the wasm module replaced its _malloc/_free again; the cache cannot stay in place",
    )
  installed.set(m, cache)
  return cache
}
