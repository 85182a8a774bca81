/**
 * Starting the wasm backend (`@tensorflow/tfjs-backend-wasm`) with the project's kernels and heap cache on it.
 */
import { cacheHeapBlocks } from "./heap-cache.js"
import { registerWasmKernels, WASM_KERNELS_VERSION } from "./kernels/index.js"
import { asWasm } from "./kernels/wasm-heap.js"
import { firstLine, importLate, type TfModule } from "./load.js"

/** A started wasm backend, or why it did not start. */
export type WasmStart =
  | {
      readonly ok: true
      readonly simd: boolean
      readonly kernels: ReadonlyArray<string>
      readonly versions: Readonly<Record<string, string>>
    }
  | { readonly ok: false; readonly reason: string }

/** Make wasm the active backend. */
export const startWasm = async (tf: TfModule): Promise<WasmStart> => {
  let version: string
  try {
    const wasm = (await importLate("@tensorflow/tfjs-backend-wasm")) as { version_wasm: string }
    version = wasm.version_wasm
  } catch (e) {
    return { ok: false, reason: `@tensorflow/tfjs-backend-wasm failed to load: ${firstLine(e)}` }
  }
  if ((globalThis as { WebAssembly?: unknown }).WebAssembly === undefined)
    return { ok: false, reason: "this Node has no WebAssembly" }
  // The multithreaded build starts its workers from Blob URLs, which Node's worker_threads cannot run; keep the
  // single-threaded SIMD build even where the flag would detect thread support.
  tf.env().set("WASM_HAS_MULTITHREAD_SUPPORT", false)
  const kernels = registerWasmKernels(tf).map((k) => k.kernelName)
  // setBackend can answer false while getBackend() already says "wasm": the answer is what counts.
  if (!(await tf.setBackend("wasm")))
    return { ok: false, reason: "tf.setBackend('wasm') returned false: the .wasm binary did not load" }
  // Without it the heap grows by hundreds of MiB per training step at sequence length 128 (see heap-cache.ts).
  cacheHeapBlocks(asWasm(tf.backend()).wasm)
  const simd = (await tf.env().getAsync("WASM_HAS_SIMD_SUPPORT")) === true
  return {
    ok: true,
    simd,
    kernels,
    versions: {
      "tfjs-backend-wasm": version,
      "wasm-kernels": WASM_KERNELS_VERSION,
      "wasm-simd": String(simd),
    },
  }
}
