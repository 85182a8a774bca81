/**
 * `BatchMatMul` for the wasm backend, routed to XNNPACK.
 *
 * The stock kernel (tfjs-backend-wasm 4.22) calls XNNPACK's fully-connected operator only when neither input is
 * transposed and both are unbatched; everything else (every backprop matmul, every attention matmul, a dense
 * layer on a [batch, seq, dim] input) runs a scalar triple loop at ~1 GFLOP/s instead of ~12. This kernel
 * rewrites such calls into the shape the fast path takes:
 *
 * - a transposed input is materialised once with the wasm `Transpose` kernel (O(size) next to O(m·k·n));
 * - a right-hand side shared by every batch ("fold") makes the batches one tall matrix, `[batch·m, k] × [k, n]`,
 *   in a single fast call, which also lets XNNPACK reuse the weights it packed on an earlier call;
 * - otherwise ("loop") each batch is one fast call on zero-copy views of the inputs and the output.
 *
 * Calls the fast path would not speed up go to the stock kernel unchanged (see `planMatMul`).
 */
import type { BatchMatMulAttrs, KernelConfig, KernelFunc, TensorInfo } from "@tensorflow/tfjs"
import {
  assertAllocated,
  asWasm,
  disposeView,
  idOf,
  pointerOf,
  projectKernel,
  registerView,
  shapeBytes,
  type WasmBackend,
  type WasmModule,
} from "./wasm-heap.js"

/**
 * Below this many multiply-adds per batch (m·k·n) the fast path's fixed cost (creating an XNNPACK operator and
 * packing the right-hand side, per batch) eats the gain: 64 batches of 16 × 16 × 16 break even, of 32³ run 3x
 * faster routed. Measured with `bench/matmul.mjs --only small`.
 */
export const MIN_FAST_WORK = 4096

/**
 * Below this many rows of a (per batch) transposing and packing b costs what the product saves: a 4 × 256 ×
 * 256ᵀ product takes 0.3 ms stock and 0.6 ms routed, 8 rows break even, 16 rows are twice as fast routed.
 */
export const MIN_FAST_ROWS = 8

/** How a call is run: unchanged by the stock kernel, as one tall product, or one product per batch. */
export type MatMulRoute = "stock" | "fold" | "loop"

/** The sizes of a `BatchMatMul` call, after reading transposes (a: [m, k], b: [k, n], per batch). */
export interface MatMulShape {
  readonly m: number
  readonly k: number
  readonly n: number
  /** batches of a, of b, and of the output (a and b each have 1 or `batch`) */
  readonly batchA: number
  readonly batchB: number
  readonly batch: number
  readonly transposeA: boolean
  readonly transposeB: boolean
}

/** Which route a call takes. Pure, so the rules are tested on their own. */
export const planMatMul = (s: MatMulShape): MatMulRoute => {
  if ((s.batchA !== 1 && s.batchA !== s.batch) || (s.batchB !== 1 && s.batchB !== s.batch)) return "stock"
  if (!s.transposeA && !s.transposeB && s.batch === 1) return "stock"
  if (s.m < MIN_FAST_ROWS || s.k === 0 || s.n === 0 || s.m * s.k * s.n < MIN_FAST_WORK) return "stock"
  return s.batchB === 1 ? "fold" : "loop"
}

const product = (xs: ReadonlyArray<number>): number => xs.reduce((a, b) => a * b, 1)

/** numpy-style broadcast of two batch shapes, or undefined when they do not broadcast. */
export const broadcastBatch = (
  a: ReadonlyArray<number>,
  b: ReadonlyArray<number>,
): ReadonlyArray<number> | undefined => {
  const rank = Math.max(a.length, b.length)
  const out: number[] = []
  for (let i = 0; i < rank; i++) {
    const x = a[a.length - rank + i] ?? 1
    const y = b[b.length - rank + i] ?? 1
    if (x !== y && x !== 1 && y !== 1) return undefined
    out.push(x === 1 ? y : x)
  }
  return out
}

type FastMatMul = (
  aId: number,
  aShape: Uint8Array,
  aRank: number,
  bId: number,
  bShape: Uint8Array,
  bRank: number,
  transposeA: boolean,
  transposeB: boolean,
  outId: number,
) => void

const fastCalls = new WeakMap<WasmModule, FastMatMul>()

/** The C++ `BatchMatMul` entry point; with [1, m, k] × [1, k, n] and no transposes it takes XNNPACK's path. */
const fastMatMul = (backend: WasmBackend): FastMatMul => {
  let f = fastCalls.get(backend.wasm)
  if (f === undefined) {
    f = backend.wasm.cwrap("BatchMatMul", null, [
      "number",
      "array",
      "number",
      "number",
      "array",
      "number",
      "number",
      "number",
      "number",
    ]) as FastMatMul
    fastCalls.set(backend.wasm, f)
  }
  return f
}

/** Swap the last two axes of `info`, seen as [batch, rows, cols]. */
const transposeLast = (
  transpose: KernelFunc,
  backend: WasmBackend,
  info: TensorInfo,
  batch: number,
  rows: number,
  cols: number,
): TensorInfo =>
  transpose({
    inputs: { x: { dataId: info.dataId, shape: [batch, rows, cols], dtype: info.dtype } },
    backend,
    attrs: { perm: [0, 2, 1] },
  }) as TensorInfo

/** Our `BatchMatMul`, falling back to `stock` (the wasm backend's own) and using its `Transpose`. */
export const routedBatchMatMul = (stock: KernelConfig, transpose: KernelConfig): KernelConfig => {
  const kernelFunc: KernelFunc = (args) => {
    const { a, b } = args.inputs as { a: TensorInfo; b: TensorInfo }
    const { transposeA, transposeB } = args.attrs as unknown as BatchMatMulAttrs
    if (a.dtype !== "float32" || b.dtype !== "float32" || a.shape.length < 2 || b.shape.length < 2)
      return stock.kernelFunc(args)
    const ar = a.shape.length
    const br = b.shape.length
    const m = (transposeA ? a.shape[ar - 1] : a.shape[ar - 2]) ?? 0
    const k = (transposeA ? a.shape[ar - 2] : a.shape[ar - 1]) ?? 0
    const kb = (transposeB ? b.shape[br - 1] : b.shape[br - 2]) ?? 0
    const n = (transposeB ? b.shape[br - 2] : b.shape[br - 1]) ?? 0
    const batchShape = broadcastBatch(a.shape.slice(0, -2), b.shape.slice(0, -2))
    // Mismatched shapes: the stock kernel throws tfjs's own error.
    if (batchShape === undefined || k !== kb) return stock.kernelFunc(args)
    const shape: MatMulShape = {
      m,
      k,
      n,
      batchA: product(a.shape.slice(0, -2)),
      batchB: product(b.shape.slice(0, -2)),
      batch: product(batchShape),
      transposeA,
      transposeB,
    }
    const route = planMatMul(shape)
    if (route === "stock") return stock.kernelFunc(args)
    return runFast(asWasm(args.backend), transpose.kernelFunc, a, b, shape, route, [...batchShape, m, n])
  }
  return projectKernel({
    kernelName: "BatchMatMul",
    backendName: "wasm",
    kernelFunc,
    // The stock kernel binds its C++ function in its setup: keep doing that, we call it for small products.
    setupFunc: (backend) => {
      stock.setupFunc?.(backend)
      transpose.setupFunc?.(backend)
    },
  })
}

const runFast = (
  backend: WasmBackend,
  transpose: KernelFunc,
  a: TensorInfo,
  b: TensorInfo,
  s: MatMulShape,
  route: "fold" | "loop",
  outShape: ReadonlyArray<number>,
): TensorInfo => {
  const temporaries: TensorInfo[] = []
  const views: number[] = []
  try {
    // After this, a is [batchA, m, k] and b is [batchB, k, n] in memory.
    const aN = s.transposeA ? transposeLast(transpose, backend, a, s.batchA, s.k, s.m) : a
    if (aN !== a) temporaries.push(aN)
    const bN = s.transposeB ? transposeLast(transpose, backend, b, s.batchB, s.n, s.k) : b
    if (bN !== b) temporaries.push(bN)
    const out = assertAllocated(backend, backend.makeOutput(outShape, "float32"))
    const call = fastMatMul(backend)
    const bShape = shapeBytes([1, s.k, s.n])
    if (route === "fold") {
      const rows = s.batchA * s.m
      // b keeps its own id when it is the caller's tensor: XNNPACK caches the packed weights on that id.
      call(
        idOf(backend, aN),
        shapeBytes([1, rows, s.k]),
        3,
        idOf(backend, bN),
        bShape,
        3,
        false,
        false,
        idOf(backend, out),
      )
      return out
    }
    const aAt = pointerOf(backend, aN)
    const bAt = pointerOf(backend, bN)
    const outAt = pointerOf(backend, out)
    const aSize = s.m * s.k
    const bSize = s.k * s.n
    const outSize = s.m * s.n
    const aShape = shapeBytes([1, s.m, s.k])
    const bShared = s.batchB === 1 ? idOf(backend, bN) : undefined
    const aShared = s.batchA === 1 ? idOf(backend, aN) : undefined
    for (let i = 0; i < s.batch; i++) {
      const aId = aShared ?? registerView(backend, aAt + 4 * i * aSize, aSize)
      if (aShared === undefined) views.push(aId)
      const bId = bShared ?? registerView(backend, bAt + 4 * i * bSize, bSize)
      if (bShared === undefined) views.push(bId)
      const outId = registerView(backend, outAt + 4 * i * outSize, outSize)
      views.push(outId)
      call(aId, aShape, 3, bId, bShape, 3, false, false, outId)
      // Dispose as we go: each b view holds an XNNPACK operator with a packed copy of that batch.
      for (const v of views.splice(0)) disposeView(backend, v)
    }
    return out
  } finally {
    for (const v of views) disposeView(backend, v)
    for (const t of temporaries) backend.disposeData(t.dataId)
  }
}
