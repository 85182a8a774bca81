/**
 * The GPU route that needs no download: Dawn for Node (the `webgpu` package, its prebuilt binary inside the
 * package) under `@tensorflow/tfjs-backend-webgpu`. On Linux Dawn drives a GPU through Vulkan.
 *
 * Without a GPU, Mesa's software rasteriser can stand in: Dawn's OpenGL backend on llvmpipe
 * (`create(["backend=opengl"])`, `EGL_PLATFORM=surfaceless`, adapter feature level "compatibility"; Debian 12:
 * `libegl-dev libegl-mesa0 libgl1-mesa-dri`, Dawn opens `libEGL.so` by its unversioned name). Such an
 * adapter is never chosen for real work; the tests use it to prove the WebGPU path computes the cpu backend's
 * numbers. Dawn does not always flag llvmpipe as `isFallbackAdapter`, so the adapter's name counts too.
 *
 * Lifetime: a Dawn instance lives as long as a reference to it does, and a live one can keep Node from exiting,
 * so `release()` drops every reference we made (the tfjs backend, the device, `navigator.gpu`).
 */
import { existsSync } from "node:fs"
import { join } from "node:path"
import { probePackage } from "./detect.js"
import { firstLine, importLate, type TfModule } from "./load.js"

// Just what we touch of the WebGPU API: declaring it here keeps @webgpu/types' globals out of the program.
interface GpuAdapterInfo {
  readonly vendor?: string
  readonly architecture?: string
  readonly device?: string
  readonly description?: string
  readonly isFallbackAdapter?: boolean
}
interface GpuDevice {
  destroy(): void
}
interface GpuAdapter {
  readonly info?: GpuAdapterInfo
  readonly isFallbackAdapter?: boolean
  readonly features: ReadonlySet<string>
  readonly limits: Readonly<Record<string, number>>
  requestDevice(descriptor?: object): Promise<GpuDevice>
}
interface Gpu {
  requestAdapter(options?: object): Promise<GpuAdapter | null>
}
interface DawnModule {
  create(flags: ReadonlyArray<string>): Gpu
  globals: object
}
type WebGpuBackendClass = new (device: GpuDevice, adapterInfo?: GpuAdapterInfo) => object

/** The adapter Dawn gave us. */
export interface AdapterSummary {
  /** e.g. "llvmpipe (LLVM 15.0.6, 256 bits)" or "NVIDIA H200" */
  readonly name: string
  /** the driver's description, e.g. "OpenGL version 4.5 (Core Profile) Mesa 22.3.6" */
  readonly description: string
  /** Dawn's backend: "vulkan" (a GPU, or lavapipe) or "opengl" (llvmpipe) */
  readonly api: "vulkan" | "opengl"
  /** a software rasteriser standing in for a GPU */
  readonly software: boolean
}

/** An open WebGPU adapter and device, ready to become the tfjs backend. */
export interface WebGpuSession {
  readonly adapter: AdapterSummary
  readonly versions: Readonly<Record<string, string>>
  /** register and set the `webgpu` tfjs backend on this device; false if tfjs refused it */
  activate(tf: TfModule): Promise<boolean>
  /** drop the backend, the device and our `navigator.gpu` so Node can exit */
  release(tf?: TfModule): void
}

/** What opening WebGPU gave: a session, or why not (with the software adapter seen, if any). */
export type WebGpuOpen =
  | { readonly ok: true; readonly session: WebGpuSession }
  | { readonly ok: false; readonly reason: string; readonly software?: AdapterSummary }

/** Options for `openWebGpu`. */
export interface WebGpuOptions {
  /** take a software adapter (llvmpipe, lavapipe) when there is no GPU: for tests, never for real work */
  readonly allowSoftware: boolean
  readonly env: Readonly<Record<string, string | undefined>>
}

const SOFTWARE = /llvmpipe|lavapipe|softpipe|swiftshader|software/i

const LIB_DIRS = [
  "/usr/lib/x86_64-linux-gnu",
  "/usr/lib/aarch64-linux-gnu",
  "/usr/lib64",
  "/usr/lib",
  "/lib64",
]

/** Whether the dynamic loader can find `lib` (checked first, so Dawn does not print its own warning). */
const hasLibrary = (lib: string, env: Readonly<Record<string, string | undefined>>): boolean => {
  if (process.platform !== "linux") return true
  const dirs = [...(env.LD_LIBRARY_PATH ?? "").split(":").filter((d) => d !== ""), ...LIB_DIRS]
  return dirs.some((d) => existsSync(join(d, lib)))
}

const summarise = (adapter: GpuAdapter, api: "vulkan" | "opengl"): AdapterSummary => {
  const info = adapter.info ?? {}
  const name =
    [info.vendor, info.device].filter((s) => s !== undefined && s !== "").join(" ") || "unknown adapter"
  const description = info.description ?? ""
  const software =
    adapter.isFallbackAdapter === true ||
    info.isFallbackAdapter === true ||
    SOFTWARE.test(`${name} ${description} ${info.architecture ?? ""}`)
  return { name, description, api, software }
}

/** Find an adapter: a GPU through Vulkan, else (if allowed) llvmpipe through OpenGL. */
export const openWebGpu = async (options: WebGpuOptions): Promise<WebGpuOpen> => {
  const pkg = probePackage("webgpu")
  if (!pkg.installed) return { ok: false, reason: "the webgpu package (Dawn for Node) is not installed" }
  const backendPkg = probePackage("@tensorflow/tfjs-backend-webgpu")
  if (!backendPkg.installed) return { ok: false, reason: "@tensorflow/tfjs-backend-webgpu is not installed" }
  let dawn: DawnModule
  try {
    dawn = (await importLate("webgpu")) as DawnModule
  } catch (e) {
    return { ok: false, reason: `the webgpu package failed to load: ${firstLine(e)}` }
  }
  const tried: string[] = []
  let software: AdapterSummary | undefined
  const attempt = async (flags: ReadonlyArray<string>, request: object, api: "vulkan" | "opengl") => {
    let gpu: Gpu | undefined = dawn.create(flags)
    const adapter = await gpu.requestAdapter(request).catch(() => null)
    if (adapter === null) {
      gpu = undefined
      tried.push(`${api}: no adapter`)
      return undefined
    }
    const summary = summarise(adapter, api)
    if (summary.software && !options.allowSoftware) {
      software = summary
      tried.push(`${api}: only the software adapter ${summary.name}`)
      return undefined
    }
    return { gpu, adapter, summary }
  }

  let found: Awaited<ReturnType<typeof attempt>>
  if (hasLibrary("libvulkan.so.1", options.env))
    found = await attempt([], { powerPreference: "high-performance" }, "vulkan")
  else tried.push("vulkan: libvulkan.so.1 not found")
  if (found === undefined && options.allowSoftware) {
    // Dawn opens the unversioned name, which Debian ships in libegl-dev.
    if (hasLibrary("libEGL.so", options.env)) {
      // Mesa's EGL needs a platform without a display server; it reads this when Dawn opens EGL, just below.
      if ((process.env.EGL_PLATFORM ?? "") === "") process.env.EGL_PLATFORM = "surfaceless"
      found = await attempt(["backend=opengl"], { featureLevel: "compatibility" }, "opengl")
    } else tried.push("opengl: libEGL.so not found")
  }
  if (found === undefined)
    return software === undefined
      ? { ok: false, reason: `no WebGPU adapter (${tried.join("; ")})` }
      : { ok: false, reason: `no GPU adapter (${tried.join("; ")})`, software }
  return { ok: true, session: await openSession(dawn, found, pkg.version, backendPkg.version) }
}

const openSession = async (
  dawn: DawnModule,
  found: { gpu: Gpu; adapter: GpuAdapter; summary: AdapterSummary },
  dawnVersion: string | undefined,
  backendVersion: string | undefined,
): Promise<WebGpuSession> => {
  let gpu: Gpu | undefined = found.gpu
  let adapter: GpuAdapter | undefined = found.adapter
  // The limits tfjs's own factory asks for: its kernels size their dispatches by the device's limits.
  const limits = found.adapter.limits
  const wanted = [
    "maxComputeWorkgroupStorageSize",
    "maxComputeWorkgroupsPerDimension",
    "maxStorageBufferBindingSize",
    "maxBufferSize",
    "maxComputeWorkgroupSizeX",
    "maxComputeInvocationsPerWorkgroup",
  ]
  let device: GpuDevice | undefined = await found.adapter.requestDevice({
    requiredLimits: Object.fromEntries(
      wanted.flatMap((k) => (limits[k] === undefined ? [] : [[k, limits[k]]])),
    ),
  })
  let ownNavigator = false
  let ownGpu = false
  const g = globalThis as { navigator?: { gpu?: unknown } }
  return {
    adapter: found.summary,
    versions: {
      ...(backendVersion === undefined ? {} : { "tfjs-backend-webgpu": backendVersion }),
      ...(dawnVersion === undefined ? {} : { webgpu: dawnVersion }),
      "webgpu-adapter": `${found.summary.name}; ${found.summary.description}`,
    },
    activate: async (tf) => {
      if (device === undefined) return false
      // tfjs-backend-webgpu uses the WebGPU globals (GPUBufferUsage, ...) and checks navigator.gpu when a
      // backend is made. It registers its own factory on import when navigator.gpu is already set; that factory
      // asks for a default adapter, which on llvmpipe needs "compatibility": ours replaces it.
      Object.assign(globalThis, dawn.globals)
      const mod = (await importLate("@tensorflow/tfjs-backend-webgpu")) as {
        WebGPUBackend: WebGpuBackendClass
      }
      if (g.navigator === undefined) {
        g.navigator = {}
        ownNavigator = true
      }
      if (g.navigator.gpu === undefined) {
        g.navigator.gpu = gpu
        ownGpu = true
      }
      if (tf.findBackendFactory("webgpu") !== null) tf.removeBackend("webgpu")
      const info = adapter?.info
      const theDevice = device
      tf.registerBackend("webgpu", () => new mod.WebGPUBackend(theDevice, info) as never, 0)
      return tf.setBackend("webgpu")
    },
    release: (tf) => {
      if (tf !== undefined && tf.findBackendFactory("webgpu") !== null) {
        // removeBackend disposes the tfjs backend (its buffers), forgets our factory (which holds the device)
        // and, if webgpu was the active backend, leaves none active.
        tf.removeBackend("webgpu")
      }
      device?.destroy()
      device = undefined
      adapter = undefined
      if (ownGpu && g.navigator !== undefined) delete g.navigator.gpu
      if (ownNavigator) delete g.navigator
      ownGpu = false
      ownNavigator = false
      gpu = undefined
    },
  }
}
