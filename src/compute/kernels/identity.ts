/**
 * `Identity` for the wasm backend, sharing the input's memory instead of copying it.
 *
 * tfjs clones with `Identity` every tensor it saves for backprop (`engine.saveTensorsForBackwardMode`), and the
 * stock kernel (tfjs-backend-wasm 4.22) copies the data each time: at seq 128 (BERT, d 64, batch 32) that is a
 * few hundred MB of short-lived copies per training step, interleaved with everything else the step allocates,
 * and the wasm heap, which never shrinks, grew by ~100-400 MB per step until malloc failed at the 4 GiB cap.
 * Tensors are immutable, so the output can be the input's data with one more reference, as the wasm `Reshape`
 * and the cpu backend's `Identity` already do.
 */
import type { KernelConfig, KernelFunc, TensorInfo } from "@tensorflow/tfjs"
import { asWasm, projectKernel } from "./wasm-heap.js"

/** Our `Identity`, falling back to `stock` (the wasm backend's own) for strings, which live outside the heap. */
export const sharedIdentity = (stock: KernelConfig): KernelConfig => {
  const kernelFunc: KernelFunc = (args) => {
    const { x } = args.inputs as { x: TensorInfo }
    if (x.dtype === "string") return stock.kernelFunc(args)
    asWasm(args.backend).incRef(x.dataId)
    return { dataId: x.dataId, shape: x.shape, dtype: x.dtype }
  }
  return projectKernel({ kernelName: "Identity", backendName: "wasm", kernelFunc })
}
