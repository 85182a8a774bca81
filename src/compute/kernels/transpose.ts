/**
 * `Transpose` for the wasm backend, as a strided copy in JavaScript over the wasm heap.
 *
 * The stock C++ kernel (tfjs-backend-wasm 4.22) is fast up to rank 4 but takes 55 ms for the rank-5 permutation
 * that splits q, k and v out of a fused projection ([batch, seq, 3, heads, dh] → [3, batch, heads, seq, dh]),
 * forward and in backprop; this loop takes 3.6 ms.
 *
 * Axes of size 1 are dropped and axes that stay neighbours are merged first, so most permutations become a
 * (batched) 2-D swap; the copy then walks the output in order, reading the input with the stride of the output's
 * last axis. What the stock kernel does well (see `takesJs`) and other dtypes go to the stock kernel.
 */
import type { KernelConfig, KernelFunc, TensorInfo, TransposeAttrs } from "@tensorflow/tfjs"
import { asWasm, heapArray, projectKernel } from "./wasm-heap.js"

/** A permutation with its size-1 axes dropped and neighbouring axes merged. */
export interface Canonical {
  readonly shape: ReadonlyArray<number>
  readonly perm: ReadonlyArray<number>
}

/** The smallest equivalent transpose of `shape` by `perm`. Pure, so it is tested on its own. */
export const canonicalize = (shape: ReadonlyArray<number>, perm: ReadonlyArray<number>): Canonical => {
  // Output axes in order, as input axes, without the size-1 ones.
  const kept = perm.filter((p) => (shape[p] ?? 1) !== 1)
  // Runs of output axes that are consecutive input axes merge into one axis.
  const groups: number[][] = []
  for (const p of kept) {
    const last = groups.at(-1)
    if (last !== undefined && last.at(-1) === p - 1) last.push(p)
    else groups.push([p])
  }
  // Number the merged axes by their order in the input.
  const order = [...groups].sort((a, b) => a[0]! - b[0]!)
  const inShape = order.map((g) => g.reduce((acc, p) => acc * shape[p]!, 1))
  return { shape: inShape, perm: groups.map((g) => order.indexOf(g)) }
}

/**
 * Whether our loop beats the stock kernel: at rank 5 and up, after merging axes. Up to rank 4 the stock kernel
 * has fast paths ([64, 64, 32] by [0, 2, 1]: 0.1 ms, ours 0.7; a 1024 × 384 matrix: 2.5 ms, ours 2.1); past
 * that it falls to a generic loop ([16, 64, 3, 4, 32] by [2, 0, 3, 1, 4]: 55 ms, ours 3.6).
 */
export const takesJs = (c: Canonical): boolean => c.perm.length >= 5

/** Copy `src` (shape `shape`) into `dst` transposed by `perm`. */
export const transposeInto = (
  src: Float32Array | Int32Array | Uint8Array,
  dst: Float32Array | Int32Array | Uint8Array,
  shape: ReadonlyArray<number>,
  perm: ReadonlyArray<number>,
): void => {
  const rank = shape.length
  if (rank === 0) {
    dst.set(src)
    return
  }
  const strides: number[] = new Array(rank)
  let size = 1
  for (let i = rank - 1; i >= 0; i--) {
    strides[i] = size
    size *= shape[i]!
  }
  if (size === 0) return
  const outShape = perm.map((p) => shape[p]!)
  const inStride = perm.map((p) => strides[p]!)
  const last = rank - 1
  const inner = outShape[last]!
  const step = inStride[last]!
  const index: number[] = new Array(rank).fill(0)
  let base = 0
  let o = 0
  for (;;) {
    for (let j = 0, s = base; j < inner; j++, s += step) dst[o++] = src[s]!
    // Advance the odometer over the output's outer axes.
    let axis = last - 1
    for (; axis >= 0; axis--) {
      index[axis]!++
      base += inStride[axis]!
      if (index[axis]! < outShape[axis]!) break
      base -= inStride[axis]! * outShape[axis]!
      index[axis] = 0
    }
    if (axis < 0) return
  }
}

/** Our `Transpose`, falling back to `stock` (the wasm backend's own). */
export const jsTranspose = (stock: KernelConfig): KernelConfig => {
  const kernelFunc: KernelFunc = (args) => {
    const { x } = args.inputs as { x: TensorInfo }
    const { perm } = args.attrs as unknown as TransposeAttrs
    const c = canonicalize(x.shape, perm)
    if (!takesJs(c) || (x.dtype !== "float32" && x.dtype !== "int32" && x.dtype !== "bool"))
      return stock.kernelFunc(args)
    const backend = asWasm(args.backend)
    const out = backend.makeOutput(
      perm.map((p) => x.shape[p]!),
      x.dtype,
    )
    transposeInto(heapArray(backend, x), heapArray(backend, out), c.shape, c.perm)
    return out
  }
  return projectKernel({
    kernelName: "Transpose",
    backendName: "wasm",
    kernelFunc,
    setupFunc: (backend) => stock.setupFunc?.(backend),
  })
}
