/**
 * The encoder computes what an independent PyTorch BERT computes (bench/torch_bert.py, plain torch.nn, not
 * Transformers) on the same safetensors weights: largest absolute difference of every output below 1e-4, on
 * the cpu and the wasm backends. Needs Debian's python3-torch under /usr/bin/python3 (CI installs it); without
 * it the test is skipped and says so.
 */
import * as tf from "@tensorflow/tfjs"
import { afterAll, describe, expect, it } from "vitest"
import { SYSTEM_PYTHON, torchParity, torchVersion } from "../bench/torch-parity.js"
import { startWasm } from "../src/compute/wasm.js"

const torch = torchVersion()
if (torch === undefined)
  console.warn(`torch parity skipped: ${SYSTEM_PYTHON} has no torch (apt-get install python3-torch)`)

describe.skipIf(torch === undefined)(`parity with PyTorch ${torch ?? ""}`, () => {
  afterAll(async () => {
    await tf.setBackend("cpu")
  })

  it("matches on the cpu backend", async () => {
    expect(await tf.setBackend("cpu")).toBe(true)
    const { byOutput, max } = await torchParity()
    expect(max, JSON.stringify(byOutput)).toBeLessThan(1e-4)
  })

  it("matches on the wasm backend with the project's kernels", async () => {
    expect((await startWasm(tf)).ok).toBe(true)
    const { byOutput, max } = await torchParity()
    expect(max, JSON.stringify(byOutput)).toBeLessThan(1e-4)
  })
})
