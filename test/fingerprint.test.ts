import { describe, expect, it } from "vitest"
import { FINGERPRINT_VERSION, fingerprint, fingerprintInput, toolVersions } from "../src/fingerprint.js"
import type { Stage } from "../src/model.js"

const base: Stage = {
  name: "train",
  action: { _tag: "Command", cmd: ["python train.py"] },
  deps: ["data.csv", "train.py"],
  outs: ["model.bin"],
  params: { lr: 0.1 },
  needs: [],
  upstream: [],
  env: { SEED: "1" },
  resources: { cpu: 1, gpu: 0 },
  retries: 0,
  retryDelayMs: 1000,
  timeoutMs: undefined,
  scratch: false,
  span: { file: "pipeline.yaml", line: 1, column: 1, endLine: 1, endColumn: 2 },
}
const digests = new Map([
  ["data.csv", "a".repeat(64)],
  ["train.py", "b".repeat(64)],
])
const fp = (s: Stage, d = digests) => fingerprint(fingerprintInput(s, d))

describe("fingerprint", () => {
  it("is a SHA-256 over a versioned input", () => {
    expect(fp(base)).toMatch(/^[0-9a-f]{64}$/)
    expect(fingerprintInput(base, digests).version).toBe(FINGERPRINT_VERSION)
    expect(fp(base)).toBe(fp({ ...base }))
  })

  it.each<[string, Partial<Stage>]>([
    ["the command", { action: { _tag: "Command", cmd: ["python train.py --fast"] } }],
    ["a param value", { params: { lr: 0.2 } }],
    ["the declared env", { env: { SEED: "2" } }],
    ["the outs", { outs: ["model2.bin"] }],
    [
      "a built-in kind's version",
      { action: { _tag: "Builtin", uses: "word-count", version: "2", with: {} } },
    ],
  ])("changes with %s", (_what, change) => {
    expect(fp({ ...base, ...change })).not.toBe(fp(base))
  })

  it("holds the compute backend's identity for kinds that compute with TensorFlow.js, and only for those", () => {
    const train = toolVersions({
      ...base,
      action: { _tag: "Builtin", uses: "train", version: "1", with: {} },
    })
    expect(train).toMatchObject({
      node: expect.any(String),
      "tfjs-core": expect.stringMatching(/^\d+\.\d+\.\d+$/),
      "tfjs-backend-wasm": expect.any(String),
      "wasm-kernels": expect.any(String),
      gpu: expect.stringMatching(/^(yes|no)$/),
    })
    const count = toolVersions({
      ...base,
      action: { _tag: "Builtin", uses: "word-count", version: "1", with: {} },
    })
    expect(Object.keys(count)).toEqual(["node"])
    expect(toolVersions(base)).toEqual({})
    // a different backend version is a different fingerprint
    const stage: Stage = { ...base, action: { _tag: "Builtin", uses: "train", version: "1", with: {} } }
    const other = fingerprint(fingerprintInput(stage, digests, { ...train, "tfjs-core": "9.9.9" }))
    expect(other).not.toBe(fp(stage))
  })

  it("tells a kind module from a built-in kind of the same name, and one module from another", () => {
    const kind = (module?: string): Stage => ({
      ...base,
      action: { _tag: "Builtin", uses: "shout", version: "1", with: {}, ...(module ? { module } : {}) },
    })
    const fps = [kind(), kind("kinds/shout.mjs"), kind("kinds/other/shout.mjs")].map((s) => fp(s))
    expect(new Set(fps).size).toBe(3)
  })

  it("changes with a dep's content", () => {
    expect(fp(base, new Map([...digests, ["data.csv", "c".repeat(64)]]))).not.toBe(fp(base))
  })

  it.each<[string, Partial<Stage>]>([
    ["the stage name", { name: "renamed" }],
    ["retries", { retries: 3 }],
    ["the retry delay", { retryDelayMs: 5 }],
    ["the timeout", { timeoutMs: 1000 }],
    ["resources", { resources: { cpu: 2, gpu: 1 } }],
    ["needs", { needs: ["other"], upstream: ["other"] }],
  ])("ignores %s", (_what, change) => {
    expect(fp({ ...base, ...change })).toBe(fp(base))
  })

  it("does not depend on the order of keys in params or with", () => {
    const a = { ...base, params: { a: 1, b: { x: 1, y: 2 } } }
    const b = { ...base, params: { b: { y: 2, x: 1 }, a: 1 } }
    expect(fp(a)).toBe(fp(b))
  })
})
