/**
 * Picking the TensorFlow.js backend for a run: the fastest that works here.
 *
 *   1. tensorflow  `@tensorflow/tfjs-node-gpu` (libtensorflow with CUDA), when installed and a GPU is visible
 *   2. webgpu      Dawn + `@tensorflow/tfjs-backend-webgpu` on a real GPU (Vulkan)
 *   3. tensorflow  `@tensorflow/tfjs-node` (libtensorflow on the CPU), when installed
 *   4. wasm        `@tensorflow/tfjs-backend-wasm` (SIMD) with the project's kernels (`kernels/`)
 *   5. cpu         tfjs's plain JavaScript backend
 *
 * The native `tfjs-node` packages download libtensorflow while installing, which fails offline, so they are
 * optional dependencies and usually absent: wasm is what most machines run. A GPU machine without tfjs-node-gpu
 * trains through WebGPU, ahead of libtensorflow on the CPU. A software WebGPU adapter (Mesa's llvmpipe) is taken
 * only with `allowSoftwareGpu`, for tests. Each backend is started for real before it is picked: tfjs can
 * register a backend it then fails to start, and `setBackend` answers false without throwing.
 */
import { detectGpus, type GpuInventory, probePackage } from "./detect.js"
import { firstLine, importLate, loadTf, type TfModule } from "./load.js"
import { startWasm } from "./wasm.js"
import { openWebGpu, type WebGpuSession } from "./webgpu.js"

/** A TensorFlow.js backend we can run on. */
export type BackendName = "tensorflow" | "webgpu" | "wasm" | "cpu"

/** Every backend, fastest first (see the file comment for the finer order). */
export const BACKEND_NAMES: ReadonlyArray<BackendName> = ["tensorflow", "webgpu", "wasm", "cpu"]

/** Options for `initBackend` and `describeBackends`. */
export interface InitOptions {
  /** try this backend first; when it cannot start, the usual order follows */
  readonly prefer?: BackendName
  /** accept a software WebGPU adapter (llvmpipe, lavapipe): for tests, never for real work */
  readonly allowSoftwareGpu?: boolean
  /** the environment GPU detection reads (`CUDA_VISIBLE_DEVICES`, `LD_LIBRARY_PATH`); default process.env */
  readonly env?: Readonly<Record<string, string | undefined>>
}

/** The backend a run got. */
export interface BackendChoice {
  readonly name: BackendName
  /** why this one, in a sentence: what it runs on, and why the faster ones did not start */
  readonly reason: string
  /** the libraries and kernels the numbers depend on (see `backendFingerprint`) */
  readonly versions: Readonly<Record<string, string>>
  /** GPUs detected on the machine, the default of `--gpus` */
  readonly gpus: number
  /** the pick is a software stand-in for a GPU (only with `allowSoftwareGpu`) */
  readonly fallback: boolean
}

/** One backend: can it run here, and why (not). */
export interface Candidate {
  readonly name: BackendName
  readonly available: boolean
  readonly reason: string
}

/** Every candidate and the GPUs, for `pipeline doctor`. */
export interface BackendReport {
  readonly gpus: GpuInventory
  readonly candidates: ReadonlyArray<Candidate>
  /** tfjs and the optional compute packages installed */
  readonly versions: Readonly<Record<string, string>>
}

type Started = {
  readonly ok: true
  readonly reason: string
  readonly versions: Readonly<Record<string, string>>
  readonly fallback: boolean
  readonly realGpu: boolean
}
type NotStarted = { readonly ok: false; readonly reason: string }

interface Step {
  readonly name: BackendName
  readonly start: (tf: TfModule) => Promise<Started | NotStarted>
}

const OPTIONAL_PACKAGES = [
  "@tensorflow/tfjs-node-gpu",
  "@tensorflow/tfjs-node",
  "webgpu",
  "@tensorflow/tfjs-backend-webgpu",
  "@tensorflow/tfjs-backend-wasm",
]

let active: WebGpuSession | undefined

const tensorflowStep = (
  pkg: "@tensorflow/tfjs-node-gpu" | "@tensorflow/tfjs-node",
  gpus: GpuInventory,
): Step => ({
  name: "tensorflow",
  start: async (tf) => {
    const probe = probePackage(pkg)
    const onGpu = pkg === "@tensorflow/tfjs-node-gpu"
    if (onGpu && gpus.count === 0) return { ok: false, reason: `no GPU for ${pkg}` }
    if (!probe.installed)
      return {
        ok: false,
        reason: `${pkg} is not installed (its install downloads libtensorflow, which needs internet)`,
      }
    try {
      await importLate(pkg)
    } catch (e) {
      return { ok: false, reason: `${pkg} is installed but failed to load: ${firstLine(e)}` }
    }
    if (tf.findBackendFactory("tensorflow") === null || !(await tf.setBackend("tensorflow")))
      return { ok: false, reason: `${pkg} loaded but its backend did not start` }
    return {
      ok: true,
      reason: onGpu
        ? `libtensorflow on ${gpus.devices[0] ?? "the GPU"} (${pkg})`
        : `libtensorflow on the CPU (${pkg})`,
      versions: probe.version === undefined ? {} : { [pkg.replace("@tensorflow/", "")]: probe.version },
      fallback: false,
      realGpu: onGpu,
    }
  },
})

const webgpuStep = (options: InitOptions, env: Readonly<Record<string, string | undefined>>): Step => ({
  name: "webgpu",
  start: async (tf) => {
    const opened = await openWebGpu({ allowSoftware: options.allowSoftwareGpu === true, env })
    if (!opened.ok) {
      const hint =
        opened.software === undefined ? "" : "; a software adapter is used only with allowSoftwareGpu (tests)"
      return { ok: false, reason: `${opened.reason}${hint}` }
    }
    const { session } = opened
    if (!(await session.activate(tf))) {
      session.release(tf)
      return { ok: false, reason: `tf.setBackend('webgpu') returned false on ${session.adapter.name}` }
    }
    active = session
    const a = session.adapter
    return {
      ok: true,
      reason: a.software
        ? `WebGPU on the software adapter ${a.name} (${a.api}), allowed for tests: not for real work`
        : `WebGPU on ${a.name} (${a.api})`,
      versions: session.versions,
      fallback: a.software,
      realGpu: !a.software,
    }
  },
})

const wasmStep: Step = {
  name: "wasm",
  start: async (tf) => {
    const started = await startWasm(tf)
    if (!started.ok) return started
    return {
      ok: true,
      reason: `WebAssembly${started.simd ? " with SIMD" : " without SIMD"}, single-threaded, with the project's ${started.kernels.length} kernels`,
      versions: started.versions,
      fallback: false,
      realGpu: false,
    }
  },
}

const cpuStep: Step = {
  name: "cpu",
  start: async (tf) =>
    (await tf.setBackend("cpu"))
      ? { ok: true, reason: "plain JavaScript", versions: {}, fallback: false, realGpu: false }
      : { ok: false, reason: "tf.setBackend('cpu') returned false" },
}

const stepsFor = (options: InitOptions, gpus: GpuInventory): ReadonlyArray<Step> => {
  const env = options.env ?? process.env
  const order = [
    tensorflowStep("@tensorflow/tfjs-node-gpu", gpus),
    webgpuStep(options, env),
    tensorflowStep("@tensorflow/tfjs-node", gpus),
    wasmStep,
    cpuStep,
  ]
  const prefer = options.prefer
  return prefer === undefined
    ? order
    : [...order.filter((s) => s.name === prefer), ...order.filter((s) => s.name !== prefer)]
}

const baseVersions = (tf: TfModule): Record<string, string> => ({
  "tfjs-core": tf.version_core,
  "tfjs-backend-cpu": tf.version_cpu,
})

/** Release what the active backend holds outside tfjs (a WebGPU device): call before the process ends. */
export const releaseBackend = async (): Promise<void> => {
  const session = active
  active = undefined
  if (session !== undefined) session.release(await loadTf())
}

/**
 * Start the fastest backend that works here and make it tfjs's active backend. Loads tfjs (about a second) on
 * the first call. Call `releaseBackend` when done.
 */
export const initBackend = async (options: InitOptions = {}): Promise<BackendChoice> => {
  const tf = await loadTf()
  await releaseBackend()
  const gpus = detectGpus(options.env ?? process.env)
  const skipped: string[] = []
  for (const step of stepsFor(options, gpus)) {
    const r = await step.start(tf)
    if (!r.ok) {
      skipped.push(`${step.name}: ${r.reason}`)
      continue
    }
    const because = skipped.length === 0 ? "" : ` (not ${skipped.join("; ")})`
    return {
      name: step.name,
      reason: `${r.reason}${because}`,
      versions: { backend: step.name, ...baseVersions(tf), ...r.versions },
      gpus: gpus.count === 0 && r.realGpu ? 1 : gpus.count,
      fallback: r.fallback,
    }
  }
  // The cpu backend is part of tfjs itself: reaching this means tfjs is broken.
  throw new Error(`no TensorFlow.js backend started: ${skipped.join("; ")}`)
}

/**
 * Whether each backend can run here, and why (not), by starting each in turn; the active backend afterwards is
 * unspecified, so call `initBackend` after this.
 */
export const describeBackends = async (options: InitOptions = {}): Promise<BackendReport> => {
  const tf = await loadTf()
  await releaseBackend()
  const gpus = detectGpus(options.env ?? process.env)
  const byName = new Map<BackendName, Candidate>()
  const { prefer: _ignored, ...unordered } = options
  for (const step of stepsFor(unordered, gpus)) {
    const seen = byName.get(step.name)
    if (seen?.available === true) continue
    const r = await step.start(tf)
    await releaseBackend()
    // tensorflow has two steps (GPU, CPU): an available one wins, else both reasons are kept.
    const reason = seen === undefined || r.ok ? r.reason : `${seen.reason}; ${r.reason}`
    byName.set(step.name, { name: step.name, available: r.ok, reason })
  }
  const versions: Record<string, string> = { tfjs: tf.version.tfjs, ...baseVersions(tf) }
  for (const name of OPTIONAL_PACKAGES) {
    const p = probePackage(name)
    if (p.version !== undefined) versions[name.replace("@tensorflow/", "")] = p.version
  }
  return { gpus, candidates: BACKEND_NAMES.map((n) => byName.get(n)!), versions }
}

/**
 * What of a backend choice goes into the fingerprint of a stage whose numbers depend on it: the backend and the
 * versions of everything that computes (not the reason, nor the GPU count).
 */
export const backendFingerprint = (choice: BackendChoice): Readonly<Record<string, string>> =>
  Object.fromEntries(Object.entries(choice.versions).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
