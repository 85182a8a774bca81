/**
 * A wasm kernel that runs the `cpu` backend's kernel of the same name: read the inputs out of the wasm heap,
 * compute on the cpu backend, write the outputs back.
 *
 * For the kernels tfjs-backend-wasm 4.22 lacks that training can meet, but rarely in a hot loop
 * (`Conv2DBackpropFilter`, the depthwise backprops, `Einsum`, the ragged ops). It costs two copies of the data
 * and runs at the cpu backend's speed, but it computes exactly what the cpu backend computes, which is what the
 * gradient checks compare against.
 */
import type {
  DataType,
  KernelBackend,
  KernelConfig,
  KernelFunc,
  NamedTensorInfoMap,
  TensorInfo,
} from "@tensorflow/tfjs"
import { asWasm, projectKernel } from "./wasm-heap.js"

/** The kernels that get this fallback, when the wasm backend has none of its own. */
export const CPU_FALLBACK_KERNELS = [
  "Conv2DBackpropFilter",
  "DepthwiseConv2dNativeBackpropFilter",
  "DepthwiseConv2dNativeBackpropInput",
  "Einsum",
  "RaggedGather",
  "RaggedRange",
  "RaggedTensorToTensor",
] as const

/** What the fallback needs from tfjs: the cpu backend and its kernels. */
export interface CpuKernels {
  cpuBackend(): KernelBackend
  cpuKernel(name: string): KernelConfig | undefined
}

const COPYABLE: ReadonlySet<DataType> = new Set(["float32", "int32", "bool"])

/** A wasm kernel config named `kernelName` that delegates to the cpu backend. */
export const cpuFallbackKernel = (kernelName: string, tf: CpuKernels): KernelConfig => {
  const kernelFunc: KernelFunc = ({ inputs, backend: b, attrs }) => {
    const backend = asWasm(b)
    const cpuKernel = tf.cpuKernel(kernelName)
    if (cpuKernel === undefined)
      throw new Error(`${kernelName} (wasm fallback): no cpu kernel to delegate to`)
    const cpu = tf.cpuBackend()
    const moved: TensorInfo[] = []
    // Inputs are a map of tensors, of arrays of tensors (RaggedGather), or an array (Einsum): keep the shape.
    const move = (x: unknown): unknown => {
      if (Array.isArray(x)) return x.map(move)
      if (x === undefined || x === null) return x
      const info = x as TensorInfo
      if (!COPYABLE.has(info.dtype))
        throw new Error(`${kernelName} (wasm fallback): unsupported dtype ${info.dtype}`)
      // readSync copies out of the heap, so the cpu backend owns what it is given.
      const values = backend.readSync(info.dataId) as Float32Array | Int32Array | Uint8Array
      const t: TensorInfo = {
        dataId: cpu.write(values, info.shape, info.dtype),
        shape: info.shape,
        dtype: info.dtype,
      }
      moved.push(t)
      return t
    }
    try {
      const cpuInputs = (
        Array.isArray(inputs)
          ? move(inputs)
          : Object.fromEntries(Object.entries(inputs).map(([k, v]) => [k, move(v)]))
      ) as NamedTensorInfoMap
      const result = cpuKernel.kernelFunc({ inputs: cpuInputs, backend: cpu, ...(attrs ? { attrs } : {}) })
      const outs = Array.isArray(result) ? result : [result]
      const back = outs.map((o) => {
        const values = cpu.readSync(o.dataId) as Float32Array | Int32Array | Uint8Array
        cpu.disposeData(o.dataId)
        return backend.makeOutput(o.shape, o.dtype, undefined, values)
      })
      return Array.isArray(result) ? back : back[0]!
    } finally {
      for (const t of moved) cpu.disposeData(t.dataId)
    }
  }
  return projectKernel({ kernelName, backendName: "wasm", kernelFunc })
}
