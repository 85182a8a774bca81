/**
 * The project's wasm kernels and their registration. See each file for what a kernel does and why.
 */
import type * as Tf from "@tensorflow/tfjs"
import { routedBatchMatMul } from "./batch-matmul.js"
import { CPU_FALLBACK_KERNELS, cpuFallbackKernel } from "./cpu-fallback.js"
import { sharedIdentity } from "./identity.js"
import { scatterAddKernel } from "./scatter-add.js"
import { leadingSum } from "./sum.js"
import { jsTranspose } from "./transpose.js"
import { isProjectKernel } from "./wasm-heap.js"

export { WASM_KERNELS_VERSION } from "./version.js"

/** How a kernel of ours works. */
export type KernelKind =
  | "routed"
  | "strided-copy"
  | "shared-data"
  | "column-sum"
  | "scatter-add"
  | "cpu-fallback"

/** One kernel we put on the wasm backend. */
export interface RegisteredKernel {
  readonly kernelName: string
  readonly kind: KernelKind
}

/** Every kernel we register, in order. */
export const WASM_KERNELS: ReadonlyArray<RegisteredKernel> = [
  { kernelName: "BatchMatMul", kind: "routed" },
  { kernelName: "Transpose", kind: "strided-copy" },
  { kernelName: "Identity", kind: "shared-data" },
  { kernelName: "Sum", kind: "column-sum" },
  { kernelName: "UnsortedSegmentSum", kind: "scatter-add" },
  ...CPU_FALLBACK_KERNELS.map((kernelName) => ({ kernelName, kind: "cpu-fallback" as const })),
]

/**
 * Put our kernels on the wasm backend. Call after importing `@tensorflow/tfjs-backend-wasm` (which registers the
 * stock kernels we wrap); idempotent. Kernels the wasm backend gained upstream are left alone, except
 * `BatchMatMul`, `Transpose`, `Identity` and `Sum`, which we wrap. Returns what is registered now.
 */
export const registerWasmKernels = (tf: typeof Tf): ReadonlyArray<RegisteredKernel> => {
  const stockTranspose = tf.getKernel("Transpose", "wasm")
  const stockMatMul = tf.getKernel("BatchMatMul", "wasm")
  if (stockTranspose === undefined || stockMatMul === undefined)
    throw new Error("registerWasmKernels: import @tensorflow/tfjs-backend-wasm first")
  if (!isProjectKernel(stockTranspose)) {
    tf.unregisterKernel("Transpose", "wasm")
    tf.registerKernel(jsTranspose(stockTranspose))
  }
  if (!isProjectKernel(stockMatMul)) {
    tf.unregisterKernel("BatchMatMul", "wasm")
    tf.registerKernel(routedBatchMatMul(stockMatMul, tf.getKernel("Transpose", "wasm")!))
  }
  const stockSum = tf.getKernel("Sum", "wasm")
  if (stockSum !== undefined && !isProjectKernel(stockSum)) {
    tf.unregisterKernel("Sum", "wasm")
    tf.registerKernel(leadingSum(stockSum))
  }
  const stockIdentity = tf.getKernel("Identity", "wasm")
  if (stockIdentity !== undefined && !isProjectKernel(stockIdentity)) {
    tf.unregisterKernel("Identity", "wasm")
    tf.registerKernel(sharedIdentity(stockIdentity))
  }
  if (tf.getKernel("UnsortedSegmentSum", "wasm") === undefined) tf.registerKernel(scatterAddKernel())
  const cpu = {
    cpuBackend: () => {
      const b = tf.findBackend("cpu")
      if (b === null) throw new Error("the cpu backend is not available")
      return b
    },
    cpuKernel: (name: string) => tf.getKernel(name, "cpu"),
  }
  for (const name of CPU_FALLBACK_KERNELS)
    if (tf.getKernel(name, "wasm") === undefined) tf.registerKernel(cpuFallbackKernel(name, cpu))
  // Kernel setups run on setBackend: a wasm backend that is already live needs ours run now.
  const live = tf.engine().registry.wasm
  if (live !== undefined)
    for (const name of ["Transpose", "BatchMatMul", "Sum"]) tf.getKernel(name, "wasm")?.setupFunc?.(live)
  return WASM_KERNELS.filter((k) => isProjectKernel(tf.getKernel(k.kernelName, "wasm")))
}
