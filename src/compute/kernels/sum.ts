/**
 * `Sum` over leading axes for the wasm backend: a column sum in JavaScript over the wasm heap.
 *
 * The stock kernel (tfjs-backend-wasm 4.22) reduces only the innermost axes; any other reduction first
 * transposes the input so that the reduced axes come last. Training reduces over the leading axes all the time:
 * every bias gradient (`add(x W^T, b)` on [rows, out] sums dy over rows) and every LayerNorm scale and shift
 * gradient does. For [4096, 512] that is a 2-million-element transpose and a sum, ~9x the time of this loop,
 * which adds each row into float64 accumulators in one pass. Other reductions go to the stock kernel.
 */
import type { KernelConfig, KernelFunc, SumAttrs, TensorInfo } from "@tensorflow/tfjs"
import { asWasm, heapArray, projectKernel } from "./wasm-heap.js"

/** How many leading axes `axis` reduces (0 when it is not a leading run, or reduces every axis). */
export const leadingAxes = (rank: number, axis: number | ReadonlyArray<number> | null): number => {
  // null: every axis (tf.sum(x)).
  if (axis === null) return 0
  const axes = [
    ...new Set((typeof axis === "number" ? [axis] : axis).map((a) => (a < 0 ? a + rank : a))),
  ].sort((a, b) => a - b)
  if (axes.length === 0 || axes.length >= rank) return 0
  return axes.every((a, i) => a === i) ? axes.length : 0
}

/** `out[c] = Σ_r x[r · cols + c]`, summed in float64, four rows per pass (half the passes over `acc`). */
export const columnSums = (x: Float32Array, out: Float32Array, rows: number, cols: number): void => {
  const acc = new Float64Array(cols)
  let r = 0
  for (; r + 4 <= rows; r += 4) {
    const r0 = r * cols
    const r1 = r0 + cols
    const r2 = r1 + cols
    const r3 = r2 + cols
    for (let c = 0; c < cols; c++) acc[c]! += x[r0 + c]! + x[r1 + c]! + (x[r2 + c]! + x[r3 + c]!)
  }
  for (; r < rows; r++) {
    const r0 = r * cols
    for (let c = 0; c < cols; c++) acc[c]! += x[r0 + c]!
  }
  out.set(acc)
}

/** Our `Sum`, falling back to `stock` (the wasm backend's own). */
export const leadingSum = (stock: KernelConfig): KernelConfig => {
  const kernelFunc: KernelFunc = (args) => {
    const { x } = args.inputs as { x: TensorInfo }
    const { axis, keepDims } = args.attrs as unknown as SumAttrs
    const k = leadingAxes(x.shape.length, axis as number | ReadonlyArray<number> | null)
    if (k === 0 || x.dtype !== "float32") return stock.kernelFunc(args)
    const rows = x.shape.slice(0, k).reduce((a, b) => a * b, 1)
    const kept = x.shape.slice(k)
    const cols = kept.reduce((a, b) => a * b, 1)
    const backend = asWasm(args.backend)
    const out = backend.makeOutput(
      keepDims ? [...x.shape.slice(0, k).map(() => 1), ...kept] : kept,
      "float32",
    )
    // Views after the allocation: it may have grown the heap.
    columnSums(heapArray(backend, x) as Float32Array, heapArray(backend, out) as Float32Array, rows, cols)
    return out
  }
  return projectKernel({
    kernelName: "Sum",
    backendName: "wasm",
    kernelFunc,
    setupFunc: (backend) => stock.setupFunc?.(backend),
  })
}
