/**
 * `UnsortedSegmentSum` for the wasm backend: a scatter-add.
 *
 * tfjs-backend-wasm 4.22 does not register it, and it is the gradient of `gather`, so without it no model with
 * an embedding trains on wasm. `out[segmentIds[i], ...] += x[i, ...]`, rows with an id outside
 * `[0, numSegments)` dropped (TensorFlow's rule). One pass over x, in row order, so the sums are deterministic;
 * the cpu backend's own kernel builds a mask per segment instead (O(numSegments · size)), which is why even a
 * plain JavaScript loop over the wasm heap is the fast way here.
 */
import type { KernelConfig, KernelFunc, TensorInfo, UnsortedSegmentSumAttrs } from "@tensorflow/tfjs"
import { asWasm, heapArray, projectKernel } from "./wasm-heap.js"

/** The scatter-add itself, on plain arrays: `out` (zeroed, [numSegments, inner]) += rows of x by id. */
export const scatterAdd = (
  x: Float32Array | Int32Array,
  ids: Int32Array | Float32Array,
  out: Float32Array | Int32Array,
  inner: number,
  numSegments: number,
): void => {
  for (let row = 0; row < ids.length; row++) {
    const s = ids[row] ?? -1
    if (!(s >= 0 && s < numSegments)) continue
    const from = row * inner
    const to = s * inner
    for (let j = 0; j < inner; j++) out[to + j]! += x[from + j]!
  }
}

const kernelFunc: KernelFunc = ({ inputs, backend: b, attrs }) => {
  const backend = asWasm(b)
  const { x, segmentIds } = inputs as { x: TensorInfo; segmentIds: TensorInfo }
  const { numSegments } = attrs as unknown as UnsortedSegmentSumAttrs
  if (x.dtype !== "float32" && x.dtype !== "int32")
    throw new Error(`UnsortedSegmentSum (wasm): unsupported dtype ${x.dtype}`)
  const innerShape = x.shape.slice(segmentIds.shape.length)
  const inner = innerShape.reduce((p, d) => p * d, 1)
  const out = backend.makeOutput([numSegments, ...innerShape], x.dtype)
  // Views after the allocation: it may have grown the heap.
  const o = heapArray(backend, out) as Float32Array | Int32Array
  o.fill(0)
  scatterAdd(
    heapArray(backend, x) as Float32Array | Int32Array,
    heapArray(backend, segmentIds) as Int32Array | Float32Array,
    o,
    inner,
    numSegments,
  )
  return out
}

/** The kernel config to register. */
export const scatterAddKernel = (): KernelConfig =>
  projectKernel({ kernelName: "UnsortedSegmentSum", backendName: "wasm", kernelFunc })
