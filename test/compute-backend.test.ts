/**
 * Backend selection: GPU detection on a fake file system, `initBackend` on the backends every machine has, the
 * fingerprint part, and `pipeline doctor`'s output.
 */
import { Effect, Either } from "effect"
import { afterAll, describe, expect, it } from "vitest"
import { doctor } from "../src/commands/doctor.js"
import type { CliContext } from "../src/commands/index.js"
import { backendFingerprint, initBackend, releaseBackend } from "../src/compute/backend.js"
import { cudaVisible, type DetectFs, detectGpus, probePackage } from "../src/compute/detect.js"

/** A file system of the given files; directories are implied by the paths. */
const fakeFs = (files: Readonly<Record<string, string>>): DetectFs => ({
  readdir: (dir) => {
    const names = new Set(
      Object.keys(files)
        .filter((f) => f.startsWith(`${dir}/`))
        .map((f) => f.slice(dir.length + 1).split("/")[0]!),
    )
    if (names.size === 0) throw new Error(`ENOENT: ${dir}`)
    return [...names]
  },
  readFile: (path) => {
    const text = files[path]
    if (text === undefined) throw new Error(`ENOENT: ${path}`)
    return text
  },
})

describe("detectGpus", () => {
  const twoH200 = {
    "/proc/driver/nvidia/gpus/0000:0f:00.0/information": "Model: \t\t NVIDIA H200\nIRQ: 42\n",
    "/proc/driver/nvidia/gpus/0000:0a:00.0/information": "Model: \t\t NVIDIA H200\nIRQ: 41\n",
  }
  it("counts the NVIDIA driver's GPUs, by bus id, with their model", () => {
    expect(detectGpus({}, fakeFs(twoH200))).toEqual({
      count: 2,
      devices: ["NVIDIA H200 (nvidia 0000:0a:00.0)", "NVIDIA H200 (nvidia 0000:0f:00.0)"],
      source: "/proc/driver/nvidia/gpus",
    })
  })
  it("narrows to CUDA_VISIBLE_DEVICES", () => {
    const gpus = detectGpus({ CUDA_VISIBLE_DEVICES: "1" }, fakeFs(twoH200))
    expect([gpus.count, gpus.source]).toEqual([
      1,
      "/proc/driver/nvidia/gpus, 1 visible by CUDA_VISIBLE_DEVICES=1",
    ])
    expect(cudaVisible("", 2)).toBe(0)
    expect(cudaVisible("-1", 2)).toBe(0)
    expect(cudaVisible("0,1,2", 2)).toBe(2)
    expect(cudaVisible("0,5,1", 2)).toBe(1)
    expect(cudaVisible("GPU-8f6c2a1e,GPU-1b2c", 2)).toBe(2)
  })
  it("falls back to render nodes of GPU vendors, skipping others", () => {
    const gpus = detectGpus(
      {},
      fakeFs({
        "/sys/class/drm/renderD128/device/vendor": "0x1002\n",
        "/sys/class/drm/renderD129/device/vendor": "0x1af4\n",
        "/sys/class/drm/card0/device/vendor": "0x1002\n",
      }),
    )
    expect(gpus).toEqual({
      count: 1,
      devices: ["amd GPU (/dev/dri/renderD128)"],
      source: "/sys/class/drm render nodes",
    })
  })
  it("finds none on a machine without either", () => {
    expect(detectGpus({}, fakeFs({})).count).toBe(0)
  })
})

describe("probePackage", () => {
  it("resolves without importing, and reads the version", () => {
    expect(probePackage("@tensorflow/tfjs-backend-wasm")).toEqual({
      name: "@tensorflow/tfjs-backend-wasm",
      installed: true,
      version: "4.22.0",
    })
    expect(probePackage("@tensorflow/no-such-package")).toEqual({
      name: "@tensorflow/no-such-package",
      installed: false,
    })
  })
})

describe("initBackend", () => {
  afterAll(releaseBackend)
  it("starts wasm with the project's kernels when asked first", async () => {
    const choice = await initBackend({ prefer: "wasm", env: {} })
    expect(choice.name).toBe("wasm")
    expect(choice.fallback).toBe(false)
    expect(choice.reason).toBe("WebAssembly with SIMD, single-threaded, with the project's 12 kernels")
    const tf = await import("@tensorflow/tfjs")
    expect(tf.getBackend()).toBe("wasm")
    expect(backendFingerprint(choice)).toEqual({
      backend: "wasm",
      "tfjs-backend-cpu": "4.22.0",
      "tfjs-backend-wasm": "4.22.0",
      "tfjs-core": "4.22.0",
      "wasm-kernels": "2",
      "wasm-simd": "true",
    })
  })
  it("starts cpu when asked first", async () => {
    const choice = await initBackend({ prefer: "cpu", env: {} })
    expect([choice.name, choice.reason, choice.gpus]).toEqual(["cpu", "plain JavaScript", 0])
    expect(backendFingerprint(choice)).toEqual({
      backend: "cpu",
      "tfjs-backend-cpu": "4.22.0",
      "tfjs-core": "4.22.0",
    })
  })
})

describe("pipeline doctor", () => {
  const runDoctor = async (argv: Record<string, string | boolean>) => {
    let stdout = ""
    const ctx: CliContext = {
      argv: [],
      cwd: process.cwd(),
      env: {},
      stdout: { write: (t: string) => (stdout += t) },
      stderr: { write: () => true },
      tty: false,
      stageRunner: "",
      spawner: "",
    }
    const result = await Effect.runPromise(Effect.either(doctor.run(argv, [], ctx)))
    return { result, stdout }
  }

  it("prints the pick, every candidate, the GPUs and versions as JSON", async () => {
    const { result, stdout } = await runDoctor({ json: true, backend: "wasm" })
    expect(result).toEqual(Either.right(0))
    const out = JSON.parse(stdout)
    expect(out.backend.name).toBe("wasm")
    expect(out.fingerprint.backend).toBe("wasm")
    expect(out.candidates.map((c: { name: string }) => c.name)).toEqual([
      "tensorflow",
      "webgpu",
      "wasm",
      "cpu",
    ])
    expect(out.candidates.slice(2).map((c: { available: boolean }) => c.available)).toEqual([true, true])
    expect(out.versions.tfjs).toBe("4.22.0")
    expect(typeof out.gpus.count).toBe("number")
    // no spawner beside the (empty) entry of this test context: the Node one, and why
    expect(out.spawner).toEqual({
      kind: "node",
      detail: " (the native spawner was not built: no C compiler when npm ran the build)",
    })
  })

  it("prints a text report", async () => {
    const { stdout } = await runDoctor({ backend: "cpu" })
    expect(stdout).toMatch(/^backend {3}cpu\n {2}why {5}plain JavaScript\ngpus {6}\d+ {2}\(/)
    expect(stdout).toMatch(/\n {2}wasm {8}available {4}WebAssembly with SIMD/)
    expect(stdout).toMatch(/\n {2}tfjs-core {12}4\.22\.0\n/)
    expect(stdout).toMatch(/\nspawner {3}node\n {2}path {4}/)
  })

  it("rejects an unknown backend", async () => {
    const { result } = await runDoctor({ backend: "cuda" })
    expect(Either.isLeft(result) && result.left.message).toBe('unknown --backend "cuda"')
  })
})
