/**
 * The WebGPU route computes the cpu backend's numbers. Without a GPU it runs on Mesa's llvmpipe through Dawn's
 * OpenGL backend (packages: see README "Compute backends"); it skips, saying why, only where no such adapter
 * exists, and under CI (CI=true, where .ci/run installs Mesa) a missing adapter fails instead.
 *
 * Tolerance: relative error (max |webgpu - cpu| / max |cpu| per tensor) below 1e-5, the wasm kernels' bound.
 * Measured on llvmpipe (Mesa 22.3.6): at most 3e-7, float32 rounding in a different summation order.
 */
import { execFile } from "node:child_process"
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { promisify } from "node:util"
import * as tf from "@tensorflow/tfjs"
import { build } from "esbuild"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type BackendChoice, initBackend, releaseBackend } from "../src/compute/backend.js"
import { openWebGpu } from "../src/compute/webgpu.js"

const TOLERANCE = 1e-5

// Probe at collection time, so a skip carries its reason in the test's name.
const probe = await openWebGpu({ allowSoftware: true, env: process.env })
if (probe.ok) probe.session.release()
const absent = probe.ok ? undefined : probe.reason
if (absent !== undefined && process.env.CI !== "true")
  process.stderr.write(`compute-webgpu: skipped, no WebGPU adapter, not even llvmpipe: ${absent}\n`)
const skip = absent !== undefined && process.env.CI !== "true"

const relErr = (got: ArrayLike<number>, want: ArrayLike<number>): number => {
  let diff = 0
  let scale = 0
  for (let i = 0; i < want.length; i++) {
    diff = Math.max(diff, Math.abs((got[i] ?? Number.NaN) - (want[i] ?? 0)))
    scale = Math.max(scale, Math.abs(want[i] ?? 0))
  }
  return got.length === want.length ? diff / Math.max(scale, 1e-30) : Number.POSITIVE_INFINITY
}

/** A small attention block over an embedding: gather, matmuls (transposed, batched), softmax, a norm. */
const loss = (table: tf.Tensor, wq: tf.Tensor, wk: tf.Tensor, wv: tf.Tensor, ids: tf.Tensor): tf.Scalar => {
  const x = tf.gather(table, ids) // [2, 8, 16]
  const flat = tf.reshape(x, [16, 16])
  const q = tf.reshape(tf.matMul(flat, wq), [2, 8, 16])
  const k = tf.reshape(tf.matMul(flat, wk), [2, 8, 16])
  const v = tf.reshape(tf.matMul(flat, wv), [2, 8, 16])
  const p = tf.softmax(tf.mul(tf.matMul(q, k, false, true), 0.25))
  const y = tf.matMul(p, v)
  const { mean, variance } = tf.moments(y, -1, true)
  return tf.sum(tf.square(tf.div(tf.sub(y, mean), tf.sqrt(tf.add(variance, 1e-5)))).mul(tf.range(0, 16, 1)))
}

/**
 * The loss and its gradients on the active backend, from the same seeded values on every backend. Read with
 * `data()`: WebGPU's `dataSync()` needs an OffscreenCanvas, which Node lacks.
 */
const run = async (): Promise<ReadonlyArray<Float32Array>> => {
  const out = tf.tidy(() => {
    const params = [
      tf.randomUniform([20, 16], -1, 1, "float32", 1),
      tf.randomUniform([16, 16], -0.5, 0.5, "float32", 2),
      tf.randomUniform([16, 16], -0.5, 0.5, "float32", 3),
      tf.randomUniform([16, 16], -0.5, 0.5, "float32", 4),
    ]
    const ids = tf.tensor2d([3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3], [2, 8], "int32")
    const { value, grads } = tf.valueAndGrads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor, d: tf.Tensor) =>
      loss(a, b, c, d, ids),
    )(params)
    return [value, ...grads]
  })
  try {
    return (await Promise.all(out.map((t) => t.data()))) as Float32Array[]
  } finally {
    tf.dispose(out)
  }
}

describe.skipIf(skip)(`WebGPU on a software adapter${skip ? ` (skipped: ${absent})` : ""}`, () => {
  let choice: BackendChoice
  beforeAll(async () => {
    expect(absent).toBeUndefined()
    choice = await initBackend({ prefer: "webgpu", allowSoftwareGpu: true })
  })
  afterAll(releaseBackend)

  it("is picked only when allowed, and says it is a software stand-in", () => {
    expect(choice.name).toBe("webgpu")
    expect(choice.fallback).toBe(true)
    expect(choice.versions.backend).toBe("webgpu")
    expect(choice.versions["tfjs-backend-webgpu"]).toBe("4.22.0")
    expect(choice.reason).toMatch(/software adapter .*not for real work/)
  })

  it("computes the cpu backend's loss and gradients", async () => {
    expect(tf.getBackend()).toBe("webgpu")
    const got = await run()
    expect(await tf.setBackend("cpu")).toBe(true)
    const want = await run()
    expect(got.map((g) => g.length)).toEqual(want.map((w) => w.length))
    for (const [i, w] of want.entries()) expect(relErr(got[i]!, w)).toBeLessThan(TOLERANCE)
  })

  it("lets Node exit once released", async () => {
    // A child process that starts WebGPU, trains one step and releases: it must end by itself.
    // Inside the repository, so the child resolves @tensorflow/tfjs and webgpu from its node_modules.
    const cache = join(import.meta.dirname, "../node_modules/.cache")
    mkdirSync(cache, { recursive: true })
    const dir = mkdtempSync(join(cache, "pipeline-webgpu-"))
    try {
      await build({
        entryPoints: [join(import.meta.dirname, "../src/compute/backend.ts")],
        outfile: join(dir, "backend.mjs"),
        bundle: true,
        format: "esm",
        platform: "node",
        external: ["@tensorflow/*", "webgpu"],
        logLevel: "warning",
      })
      writeFileSync(
        join(dir, "main.mjs"),
        `import { initBackend, releaseBackend } from "./backend.mjs"
const choice = await initBackend({ prefer: "webgpu", allowSoftwareGpu: true })
const tf = await import("@tensorflow/tfjs")
await tf.tidy(() => tf.grad((x) => tf.matMul(x, x).sum())(tf.ones([8, 8]))).data()
await releaseBackend()
process.stdout.write(choice.name)
`,
      )
      const { stdout } = await promisify(execFile)(process.execPath, [join(dir, "main.mjs")], {
        cwd: join(import.meta.dirname, ".."),
        timeout: 30_000,
      })
      expect(stdout).toBe("webgpu")
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
