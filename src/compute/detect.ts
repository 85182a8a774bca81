/**
 * What this machine offers for compute, found cheaply: the GPUs the kernel shows (a few small reads under /proc
 * and /sys, no GPU library loaded), and which optional compute packages are installed (resolved, not imported).
 * The CLI can call this at start-up (the `--gpus` default) without paying for TensorFlow.js.
 */
import { readdirSync, readFileSync } from "node:fs"
import { createRequire } from "node:module"
import { dirname, join } from "node:path"

/** The GPUs found, and where they were found. */
export interface GpuInventory {
  /** how many GPUs a training stage may use (after `CUDA_VISIBLE_DEVICES`) */
  readonly count: number
  /** one line per GPU, e.g. "NVIDIA H200 (nvidia 0000:0f:00.0)" */
  readonly devices: ReadonlyArray<string>
  /** what the count rests on, for `pipeline doctor` */
  readonly source: string
}

/** The file reads detection makes; both throw when the path is absent. */
export interface DetectFs {
  readdir(path: string): ReadonlyArray<string>
  readFile(path: string): string
}

const nodeFs: DetectFs = {
  readdir: (p) => readdirSync(p),
  readFile: (p) => readFileSync(p, "utf8"),
}

const attempt = <A>(f: () => A): A | undefined => {
  try {
    return f()
  } catch {
    return undefined
  }
}

/** PCI vendors whose render nodes are GPUs a backend can drive (virtual and display-only ones are not). */
const GPU_VENDORS: Readonly<Record<string, string>> = {
  "0x10de": "nvidia",
  "0x1002": "amd",
  "0x8086": "intel",
}

/**
 * `CUDA_VISIBLE_DEVICES` narrows what NVIDIA GPUs a process may use: unset means all, "" or "-1" none,
 * otherwise a comma-separated list (indices or UUIDs) up to the first invalid entry.
 */
export const cudaVisible = (value: string | undefined, present: number): number => {
  if (value === undefined) return present
  const entries = value.split(",").map((s) => s.trim())
  let n = 0
  for (const e of entries) {
    if (e === "" || e === "-1" || (/^\d+$/.test(e) && Number(e) >= present)) break
    n++
  }
  return Math.min(n, present)
}

/** The GPUs of this machine, by the NVIDIA driver's /proc entries, else by DRM render nodes' PCI vendor. */
export const detectGpus = (
  env: Readonly<Record<string, string | undefined>>,
  fs: DetectFs = nodeFs,
): GpuInventory => {
  const nvidia = attempt(() => fs.readdir("/proc/driver/nvidia/gpus")) ?? []
  if (nvidia.length > 0) {
    const names = [...nvidia].sort().map((bus) => {
      const info = attempt(() => fs.readFile(`/proc/driver/nvidia/gpus/${bus}/information`)) ?? ""
      const model = /^Model:\s*(.+)$/m.exec(info)?.[1]?.trim() ?? "NVIDIA GPU"
      return `${model} (nvidia ${bus})`
    })
    const count = cudaVisible(env.CUDA_VISIBLE_DEVICES, names.length)
    const narrowed =
      count < names.length ? `, ${count} visible by CUDA_VISIBLE_DEVICES=${env.CUDA_VISIBLE_DEVICES}` : ""
    return { count, devices: names, source: `/proc/driver/nvidia/gpus${narrowed}` }
  }
  const nodes = (attempt(() => fs.readdir("/sys/class/drm")) ?? []).filter((n) => /^renderD\d+$/.test(n))
  const devices = [...nodes].sort().flatMap((node) => {
    const vendor = attempt(() => fs.readFile(`/sys/class/drm/${node}/device/vendor`))?.trim() ?? ""
    const name = GPU_VENDORS[vendor]
    return name === undefined ? [] : [`${name} GPU (/dev/dri/${node})`]
  })
  return {
    count: devices.length,
    devices,
    source: devices.length > 0 ? "/sys/class/drm render nodes" : "no NVIDIA driver, no GPU render node",
  }
}

/** An optional package: installed or not, and its version. */
export interface PackageProbe {
  readonly name: string
  readonly installed: boolean
  readonly version?: string
}

const requireHere = createRequire(import.meta.url)

/** Whether `name` resolves from here (without loading it), and its version. */
export const probePackage = (name: string): PackageProbe => {
  const main = attempt(() => requireHere.resolve(name))
  if (main === undefined) return { name, installed: false }
  // Walk up from the entry point to the package's own package.json (works whatever its `exports` say).
  for (let dir = dirname(main); dir !== dirname(dir); dir = dirname(dir)) {
    const pkg = attempt(
      () => JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as Record<string, unknown>,
    )
    if (pkg?.name === name)
      return typeof pkg.version === "string"
        ? { name, installed: true, version: pkg.version }
        : { name, installed: true }
  }
  return { name, installed: true }
}
