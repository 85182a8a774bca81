/**
 * What of the compute setup goes into the fingerprint of a stage whose numbers depend on it (the training and
 * evaluation kinds), found without loading TensorFlow.js: the versions of the compute packages installed, the
 * project kernels' version, and whether a GPU is visible. Those decide which backend `initBackend` picks and
 * what it computes, so installing tfjs-node, upgrading tfjs or moving to a GPU machine reruns those stages
 * instead of restoring numbers another backend produced. Package versions are read from their package.json
 * (resolved, not imported) and GPUs from /proc and /sys: a few small reads, once per process.
 */
import { detectGpus, probePackage } from "./detect.js"
import { WASM_KERNELS_VERSION } from "./kernels/version.js"

const PACKAGES = [
  "@tensorflow/tfjs-core",
  "@tensorflow/tfjs-backend-wasm",
  "@tensorflow/tfjs-backend-webgpu",
  "webgpu",
  "@tensorflow/tfjs-node",
  "@tensorflow/tfjs-node-gpu",
] as const

let cached: Readonly<Record<string, string>> | undefined

/** The compute identity, for `FingerprintInput.tools` (see the file comment). */
export const computeIdentity = (): Readonly<Record<string, string>> => {
  if (cached !== undefined) return cached
  const out: Record<string, string> = { "wasm-kernels": WASM_KERNELS_VERSION }
  for (const name of PACKAGES) {
    const p = probePackage(name)
    if (p.installed) out[name.replace("@tensorflow/", "")] = p.version ?? "unknown"
  }
  out.gpu = detectGpus(process.env).count > 0 ? "yes" : "no"
  cached = out
  return out
}
