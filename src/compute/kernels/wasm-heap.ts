/**
 * The few internals of `@tensorflow/tfjs-backend-wasm`'s `BackendWasm` that our kernels reach into, typed
 * narrowly, and the heap helpers built on them.
 *
 * The wasm backend keeps every tensor in the module's heap and tells its C++ side about it by a numeric id
 * (`register_tensor(id, size, pointer)`); a C++ kernel takes ids, not pointers. A "view" is an id we register
 * for a range inside an existing tensor, so a C++ kernel can work on one batch of a batched tensor without a
 * copy. Views are ours to dispose: `dispose_data(id)` forgets the id (and runs the C++ disposal callbacks, which
 * free XNNPACK operators cached on it) without freeing the memory, which the owning tensor still holds.
 */
import type { DataId, DataType, KernelConfig, TensorInfo } from "@tensorflow/tfjs"

/** The Emscripten module inside the wasm backend. */
export interface WasmModule {
  readonly HEAPU8: Uint8Array
  cwrap(
    name: string,
    returns: null | "number",
    args: ReadonlyArray<"number" | "array">,
  ): (...args: ReadonlyArray<unknown>) => unknown
  readonly tfjs: {
    registerTensor(id: number, size: number, memoryOffset: number): void
    disposeData(id: number): void
  }
}

interface TensorData {
  readonly id: number
  readonly memoryOffset: number
}

/** `BackendWasm`, as far as our kernels use it. */
export interface WasmBackend {
  readonly wasm: WasmModule
  readonly dataIdMap: { get(dataId: DataId): TensorData | undefined }
  dataIdNextNumber: number
  makeOutput(
    shape: ReadonlyArray<number>,
    dtype: DataType,
    memoryOffset?: number,
    values?: unknown,
  ): TensorInfo
  disposeData(dataId: DataId, force?: boolean): boolean
  incRef(dataId: DataId): void
  readSync(dataId: DataId): unknown
}

/** The wasm backend a kernel was called with. */
export const asWasm = (backend: unknown): WasmBackend => backend as WasmBackend

const dataOf = (backend: WasmBackend, info: TensorInfo): TensorData => {
  const d = backend.dataIdMap.get(info.dataId)
  if (d === undefined) throw new Error("wasm kernel: input tensor has no data on the wasm backend")
  return d
}

/** The C++ id of a tensor. */
export const idOf = (backend: WasmBackend, info: TensorInfo): number => dataOf(backend, info).id

/** The byte offset of a tensor's data in the heap. */
export const pointerOf = (backend: WasmBackend, info: TensorInfo): number =>
  dataOf(backend, info).memoryOffset

/**
 * Throw when the heap could not hold a new tensor. tfjs-backend-wasm 4.22 does not check `malloc`: at the 4 GiB
 * cap it records offset 0 and the next kernel writes over the bottom of the heap (`Aborted()`, or `memory access
 * out of bounds`). An empty tensor may sit anywhere, so only a non-empty one at 0 is a failure.
 */
export const assertAllocated = (backend: WasmBackend, info: TensorInfo): TensorInfo => {
  if (pointerOf(backend, info) === 0 && info.shape.every((d) => d > 0))
    throw new Error(
      `wasm kernel: out of wasm memory allocating [${info.shape.join(", ")}] (heap ${backend.wasm.HEAPU8.length} bytes)`,
    )
  return info
}

/** Register `size` float32s at `pointer` under a fresh id (see the file comment); dispose with `disposeView`. */
export const registerView = (backend: WasmBackend, pointer: number, size: number): number => {
  const id = backend.dataIdNextNumber++
  backend.wasm.tfjs.registerTensor(id, size, pointer)
  return id
}

export const disposeView = (backend: WasmBackend, id: number): void => backend.wasm.tfjs.disposeData(id)

/**
 * A typed array over a tensor's heap memory. Take it after the last allocation of the kernel: growing the heap
 * replaces its buffer and detaches older views.
 */
export const heapArray = (backend: WasmBackend, info: TensorInfo): Float32Array | Int32Array | Uint8Array => {
  const buffer = backend.wasm.HEAPU8.buffer
  const size = info.shape.reduce((a, b) => a * b, 1)
  const at = pointerOf(backend, info)
  switch (info.dtype) {
    case "float32":
      return new Float32Array(buffer, at, size)
    case "int32":
      return new Int32Array(buffer, at, size)
    case "bool":
      return new Uint8Array(buffer, at, size)
    default:
      throw new Error(`wasm kernel: unsupported dtype ${info.dtype}`)
  }
}

/** Shape bytes as the C++ kernels take them (`size_t*`, 32-bit in wasm). */
export const shapeBytes = (shape: ReadonlyArray<number>): Uint8Array =>
  new Uint8Array(new Int32Array(shape).buffer)

/** Marks a kernel config as ours, so registering twice (two module instances) is a no-op. */
export const PROJECT_KERNEL = "pipeline.projectKernel"

/** A kernel config carrying our marker. */
export const projectKernel = (config: KernelConfig): KernelConfig =>
  Object.assign(config, { [PROJECT_KERNEL]: true })

/** Whether a registered kernel config is one of ours. */
export const isProjectKernel = (config: KernelConfig | undefined): boolean =>
  config !== undefined && (config as unknown as Record<string, unknown>)[PROJECT_KERNEL] === true
