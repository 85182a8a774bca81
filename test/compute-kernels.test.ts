/**
 * The project's wasm kernels compute what the cpu backend computes: forward values and gradients, relative error
 * (max |wasm - cpu| / max |cpu| over a tensor) below 1e-5.
 */
import * as tf from "@tensorflow/tfjs"
import "@tensorflow/tfjs-backend-wasm"
import { beforeAll, describe, expect, it } from "vitest"
import { broadcastBatch, MIN_FAST_WORK, planMatMul } from "../src/compute/kernels/batch-matmul.js"
import { registerWasmKernels, WASM_KERNELS } from "../src/compute/kernels/index.js"
import { scatterAdd } from "../src/compute/kernels/scatter-add.js"
import { columnSums, leadingAxes } from "../src/compute/kernels/sum.js"
import { canonicalize, takesJs, transposeInto } from "../src/compute/kernels/transpose.js"
import { assertAllocated, asWasm } from "../src/compute/kernels/wasm-heap.js"

const TOLERANCE = 1e-5

/** Deterministic values in [-1, 1) (mulberry32). */
const seeded = (seed: number, size: number): Float32Array => {
  let s = seed >>> 0
  const out = new Float32Array(size)
  for (let i = 0; i < size; i++) {
    s = (s + 0x6d2b79f5) >>> 0
    let t = s
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    out[i] = ((t ^ (t >>> 14)) >>> 0) / 2 ** 31 - 1
  }
  return out
}

/** An input: float values made from a seed, or given ints. */
interface Input {
  readonly shape: ReadonlyArray<number>
  readonly seed?: number
  readonly ints?: ReadonlyArray<number>
}

const size = (shape: ReadonlyArray<number>): number => shape.reduce((a, b) => a * b, 1)

const make = (i: Input): tf.Tensor =>
  i.ints !== undefined
    ? tf.tensor(i.ints as number[], i.shape as number[], "int32")
    : tf.tensor(seeded(i.seed ?? 1, size(i.shape)), i.shape as number[])

/** Heap allocations of one small training step on wasm with the shared Identity (see "Identity" below). */
const STEP_MALLOCS = 28

const relErr = (got: ArrayLike<number>, want: ArrayLike<number>): number => {
  let diff = 0
  let scale = 0
  for (let i = 0; i < want.length; i++) {
    diff = Math.max(diff, Math.abs((got[i] ?? Number.NaN) - (want[i] ?? 0)))
    scale = Math.max(scale, Math.abs(want[i] ?? 0))
  }
  return got.length === want.length ? diff / Math.max(scale, 1e-30) : Number.POSITIVE_INFINITY
}

const use = async (backend: string): Promise<void> => {
  // setBackend can answer false while getBackend() already names the backend: check the answer.
  expect(await tf.setBackend(backend)).toBe(true)
}

/** The value of f and its gradients with respect to the float inputs, on one backend. */
const valueAndGrads = async (
  backend: string,
  inputs: ReadonlyArray<Input>,
  f: (xs: ReadonlyArray<tf.Tensor>) => tf.Scalar,
): Promise<{ value: Float32Array; grads: ReadonlyArray<Float32Array>; shapes: ReadonlyArray<number[]> }> => {
  await use(backend)
  return tf.tidy(() => {
    const xs = inputs.map(make)
    const wrt = xs.filter((x) => x.dtype === "float32")
    const { value, grads } = tf.valueAndGrads((...vs: tf.Tensor[]) => {
      let j = 0
      return f(xs.map((x) => (x.dtype === "float32" ? vs[j++]! : x)))
    })(wrt)
    return {
      value: value.dataSync() as Float32Array,
      grads: grads.map((g) => g.dataSync() as Float32Array),
      shapes: grads.map((g) => g.shape),
    }
  })
}

/** Assert wasm's value and gradients equal cpu's; returns the worst relative error. */
const gradCheck = async (
  inputs: ReadonlyArray<Input>,
  f: (xs: ReadonlyArray<tf.Tensor>) => tf.Scalar,
): Promise<number> => {
  const want = await valueAndGrads("cpu", inputs, f)
  const got = await valueAndGrads("wasm", inputs, f)
  expect(got.shapes).toEqual(want.shapes)
  const errs = [relErr(got.value, want.value), ...want.grads.map((g, i) => relErr(got.grads[i]!, g))]
  const worst = Math.max(...errs)
  expect(worst).toBeLessThan(TOLERANCE)
  return worst
}

/** Assert a forward computation on wasm equals cpu's. */
const forwardCheck = async (f: () => tf.Tensor | ReadonlyArray<tf.Tensor>): Promise<void> => {
  const run = async (backend: string) => {
    await use(backend)
    return tf.tidy(() => {
      const r = f()
      return (Array.isArray(r) ? r : [r]).map((t: tf.Tensor) => ({
        shape: t.shape,
        dtype: t.dtype,
        data: Array.from(t.dataSync()),
      }))
    })
  }
  const want = await run("cpu")
  const got = await run("wasm")
  expect(got.map((g) => [g.shape, g.dtype])).toEqual(want.map((w) => [w.shape, w.dtype]))
  for (const [i, w] of want.entries()) expect(relErr(got[i]!.data, w.data)).toBeLessThan(TOLERANCE)
}

/**
 * sum(t² · w) with a fixed w in [0.5, 1.5): a scalar loss whose gradient is a dense, non-trivial dy, and whose
 * terms are all positive, so the loss itself compares without cancellation.
 */
const weighted = (t: tf.Tensor, seed = 99): tf.Scalar =>
  tf.sum(tf.mul(tf.square(t), tf.add(tf.mul(make({ shape: t.shape, seed }), 0.5), 1)))

beforeAll(async () => {
  tf.env().set("PROD", true)
  registerWasmKernels(tf)
  await use("wasm")
})

describe("registration", () => {
  it("registers every project kernel on wasm, once", () => {
    expect(registerWasmKernels(tf)).toEqual(WASM_KERNELS)
    expect(WASM_KERNELS.map((k) => k.kernelName)).toEqual([
      "BatchMatMul",
      "Transpose",
      "Identity",
      "Sum",
      "UnsortedSegmentSum",
      "Conv2DBackpropFilter",
      "DepthwiseConv2dNativeBackpropFilter",
      "DepthwiseConv2dNativeBackpropInput",
      "Einsum",
      "RaggedGather",
      "RaggedRange",
      "RaggedTensorToTensor",
    ])
  })
})

describe("BatchMatMul routing", () => {
  const base = { m: 32, k: 32, n: 32, batchA: 1, batchB: 1, batch: 1, transposeA: false, transposeB: false }
  it("leaves the stock fast path and small products alone", () => {
    expect(planMatMul(base)).toBe("stock")
    expect(planMatMul({ ...base, m: 2, transposeB: true })).toBe("stock")
    expect(planMatMul({ ...base, m: 8, k: 8, n: 8, transposeA: true })).toBe("stock")
    expect(8 * 8 * 8).toBeLessThan(MIN_FAST_WORK)
  })
  it("folds batches that share the right-hand side, loops over the others", () => {
    expect(planMatMul({ ...base, transposeB: true })).toBe("fold")
    expect(planMatMul({ ...base, batchA: 8, batch: 8 })).toBe("fold")
    expect(planMatMul({ ...base, batchA: 8, batchB: 8, batch: 8 })).toBe("loop")
    expect(planMatMul({ ...base, batchB: 8, batch: 8, transposeA: true })).toBe("loop")
  })
  it("broadcasts batch shapes like numpy", () => {
    expect(broadcastBatch([2, 1], [3])).toEqual([2, 3])
    expect(broadcastBatch([4], [])).toEqual([4])
    expect(broadcastBatch([2], [3])).toBeUndefined()
  })
})

/** `shape` with its last two axes swapped when `on`. */
const swapLast = (shape: number[], on: boolean): number[] =>
  on ? [...shape.slice(0, -2), shape.at(-1)!, shape.at(-2)!] : shape

describe("BatchMatMul gradients equal cpu's", () => {
  const cases: ReadonlyArray<[string, number[], number[]]> = [
    ["2-D", [40, 24], [24, 36]],
    ["batched (attention)", [2, 3, 20, 16], [2, 3, 16, 20]],
    ["below the routing threshold", [3, 5], [5, 4]],
  ]
  for (const [name, aShape, bShape] of cases)
    for (const transposeA of [false, true])
      for (const transposeB of [false, true])
        it(`${name}, transposeA=${transposeA}, transposeB=${transposeB}`, async () => {
          await gradCheck(
            [
              { shape: swapLast(aShape, transposeA), seed: 1 },
              { shape: swapLast(bShape, transposeB), seed: 2 },
            ],
            ([a, b]) => weighted(tf.matMul(a!, b!, transposeA, transposeB)),
          )
        })
})

// tfjs 4.22 cannot differentiate a matMul that broadcasts batch axes (on any backend: the gradient keeps the
// broadcast shape), so these routes are checked forward.
describe("BatchMatMul with broadcast batches equals cpu's", () => {
  const cases: ReadonlyArray<[string, number[], number[]]> = [
    ["3-D times shared 2-D (fold)", [3, 20, 24], [24, 16]],
    ["shared 2-D times 3-D (loop)", [20, 24], [3, 24, 16]],
    ["[2,1] batches times [3] batches", [2, 1, 20, 24], [3, 24, 16]],
  ]
  for (const [name, aShape, bShape] of cases)
    for (const transposeA of [false, true])
      for (const transposeB of [false, true])
        it(`${name}, transposeA=${transposeA}, transposeB=${transposeB}`, async () => {
          await forwardCheck(() =>
            tf.matMul(
              make({ shape: swapLast(aShape, transposeA), seed: 1 }),
              make({ shape: swapLast(bShape, transposeB), seed: 2 }),
              transposeA,
              transposeB,
            ),
          )
        })
})

describe("Transpose (strided copy)", () => {
  it("drops size-1 axes and merges axes that stay neighbours", () => {
    expect(canonicalize([16, 64, 4, 32], [0, 2, 1, 3])).toEqual({
      shape: [16, 64, 4, 32],
      perm: [0, 2, 1, 3],
    })
    expect(canonicalize([16, 64, 3, 4, 32], [2, 0, 3, 1, 4])).toEqual({
      shape: [16, 64, 3, 4, 32],
      perm: [2, 0, 3, 1, 4],
    })
    expect(canonicalize([16, 64, 3, 4, 32], [2, 0, 1, 3, 4])).toEqual({
      shape: [1024, 3, 128],
      perm: [1, 0, 2],
    })
    expect(canonicalize([2, 3, 4], [1, 2, 0])).toEqual({ shape: [2, 12], perm: [1, 0] })
    expect(canonicalize([1, 5, 1, 7], [3, 2, 1, 0])).toEqual({ shape: [5, 7], perm: [1, 0] })
    expect(canonicalize([5, 1], [1, 0])).toEqual({ shape: [5], perm: [0] })
  })
  it("runs only where the stock kernel is slow: rank 5 and up after merging", () => {
    expect(takesJs(canonicalize([16, 64, 3, 4, 32], [2, 0, 3, 1, 4]))).toBe(true)
    expect(takesJs(canonicalize([16, 64, 3, 4, 32], [2, 0, 1, 3, 4]))).toBe(false)
    expect(takesJs(canonicalize([16, 64, 4, 32], [0, 2, 1, 3]))).toBe(false)
  })
  const cases: ReadonlyArray<[number[], number[]]> = [
    [
      [37, 23],
      [1, 0],
    ],
    [
      [4, 5, 6],
      [0, 2, 1],
    ],
    [
      [2, 3, 4, 5],
      [3, 1, 0, 2],
    ],
    [
      [3, 1, 4],
      [2, 1, 0],
    ],
    [
      [2, 5, 3, 4, 6],
      [2, 0, 3, 1, 4],
    ],
    [
      [2, 3, 2, 3, 2, 3],
      [5, 3, 1, 4, 2, 0],
    ],
  ]
  for (const [shape, perm] of cases) {
    it(`copies [${shape}] by [${perm}] like cpu's transpose`, async () => {
      await use("cpu")
      const values = seeded(5, size(shape))
      const want = tf.tidy(() => tf.transpose(tf.tensor(values, shape), perm).dataSync())
      const got = new Float32Array(values.length)
      const c = canonicalize(shape, perm)
      transposeInto(values, got, c.shape, c.perm)
      expect(Array.from(got)).toEqual(Array.from(want))
    })
    if (takesJs(canonicalize(shape, perm)))
      it(`[${shape}] by [${perm}] on wasm, float32 and int32, and its gradient`, async () => {
        await forwardCheck(() => [
          tf.transpose(make({ shape, seed: 21 }), perm),
          tf.transpose(tf.range(0, size(shape), 1, "int32").reshape(shape), perm),
        ])
        await gradCheck([{ shape, seed: 22 }], ([x]) => weighted(tf.transpose(x!, perm)))
      })
  }
})

describe("UnsortedSegmentSum (scatter-add)", () => {
  it("adds rows by id and drops ids out of range", () => {
    const out = new Float32Array(6)
    scatterAdd(new Float32Array([1, 2, 3, 4, 5, 6, 7, 8]), new Int32Array([2, 0, 2, -1]), out, 2, 3)
    expect(Array.from(out)).toEqual([3, 4, 0, 0, 6, 8])
  })
  it("gives an embedding its gradient (gather's backprop), repeated ids included", async () => {
    const ids = Array.from({ length: 48 }, (_, i) => (i * 7) % 30)
    await gradCheck(
      [
        { shape: [30, 16], seed: 3 },
        { shape: [4, 12], ints: ids },
      ],
      ([table, idx]) => weighted(tf.gather(table!, idx!)),
    )
  })
  it("sums float32 segments like cpu", async () => {
    await forwardCheck(() =>
      tf.unsortedSegmentSum(
        make({ shape: [10, 3, 2], seed: 4 }),
        tf.tensor1d([0, 4, 4, 1, 0, 2, 2, 2, 3, 4], "int32"),
        5,
      ),
    )
  })
  it("keeps int32 as int32 (TensorFlow's rule; tfjs's cpu kernel answers float32)", async () => {
    await use("wasm")
    const out = tf.unsortedSegmentSum(
      tf.tensor2d([1, 2, 3, 4, 5, 6], [3, 2], "int32"),
      tf.tensor1d([1, 1, 3], "int32"),
      4,
    )
    expect(out.dtype).toBe("int32")
    expect(out.arraySync()).toEqual([
      [0, 0],
      [4, 6],
      [0, 0],
      [5, 6],
    ])
  })
})

describe("Sum over leading axes (column sum)", () => {
  it("takes leading runs of axes only, in any order or sign, and not a full reduction", () => {
    expect(leadingAxes(2, 0)).toBe(1)
    expect(leadingAxes(3, [1, 0])).toBe(2)
    expect(leadingAxes(3, [-3, -2])).toBe(2)
    expect(leadingAxes(3, [0, 2])).toBe(0)
    expect(leadingAxes(2, 1)).toBe(0)
    expect(leadingAxes(2, [0, 1])).toBe(0)
    expect(leadingAxes(2, [])).toBe(0)
    expect(leadingAxes(2, null)).toBe(0)
  })
  it("adds the rows, four at a time and the rest one by one", () => {
    const out = new Float32Array(3)
    const x = Float32Array.from({ length: 6 * 3 }, (_, i) => 10 ** Math.floor(i / 3) * ((i % 3) + 1))
    columnSums(x, out, 6, 3)
    expect(Array.from(out)).toEqual([111111, 222222, 333333])
  })
  it("sums like cpu, with and without keepDims", async () => {
    await forwardCheck(() => {
      const x = make({ shape: [6, 5, 4], seed: 8 })
      return [tf.sum(x, 0), tf.sum(x, [0, 1]), tf.sum(x, [1, 0], true), tf.sum(x, 2), tf.sum(x, [0, 2])]
    })
  })
  it("gives a dense layer's bias and a LayerNorm's scale their gradients", async () => {
    await gradCheck(
      [
        { shape: [2, 24, 16], seed: 9 },
        { shape: [16, 8], seed: 10 },
        { shape: [8], seed: 11 },
        { shape: [8], seed: 12 },
      ],
      ([x, w, b, g]) => {
        const h = tf.add(tf.matMul(tf.reshape(x!, [48, 16]), w!), b!)
        const { mean, variance } = tf.moments(h, -1, true)
        return weighted(tf.mul(tf.div(tf.sub(h, mean), tf.sqrt(tf.add(variance, 1e-5))), g!))
      },
    )
  })
})

describe("cpu fallbacks", () => {
  it("Conv2DBackpropFilter: conv2d gradients", async () => {
    await gradCheck(
      [
        { shape: [2, 9, 9, 3], seed: 5 },
        { shape: [3, 3, 3, 4], seed: 6 },
      ],
      ([x, w]) => weighted(tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, [2, 2], "same")),
    )
  })
  it("depthwise backprops: depthwiseConv2d gradients", async () => {
    await gradCheck(
      [
        { shape: [2, 8, 8, 3], seed: 7 },
        { shape: [3, 3, 3, 2], seed: 8 },
      ],
      ([x, w]) => weighted(tf.depthwiseConv2d(x as tf.Tensor4D, w as tf.Tensor4D, 1, "valid")),
    )
  })
  it("Einsum (tfjs has no Einsum gradient: forward only)", async () => {
    await forwardCheck(() => [
      tf.einsum("ij,jk->ik", make({ shape: [5, 4], seed: 9 }), make({ shape: [4, 3], seed: 10 })),
      tf.einsum("bij,bkj->bik", make({ shape: [2, 5, 4], seed: 11 }), make({ shape: [2, 3, 4], seed: 12 })),
      tf.einsum("i,i->", make({ shape: [7], seed: 13 }), make({ shape: [7], seed: 14 })),
    ])
  })
  it("ragged ops", async () => {
    await forwardCheck(() => {
      const r = tf.raggedRange(
        tf.tensor1d([0, 5], "int32"),
        tf.tensor1d([3, 8], "int32"),
        tf.tensor1d([1, 2], "int32"),
      )
      const g = tf.raggedGather(
        [tf.tensor1d([0, 2, 3, 6], "int32")],
        make({ shape: [6], seed: 15 }),
        tf.tensor1d([2, 0], "int32"),
        1,
      )
      const d = tf.raggedTensorToTensor(
        [2, 4],
        make({ shape: [5], seed: 16 }),
        tf.scalar(0),
        [tf.tensor1d([0, 3, 5], "int32")],
        ["ROW_SPLITS"],
      )
      return [
        r.rtNestedSplits,
        r.rtDenseValues,
        ...g.outputNestedSplits,
        g.outputDenseValues,
        d,
      ] as tf.Tensor[]
    })
  })
})

describe("an encoder layer", () => {
  it("trains to cpu's gradients: embedding, fused qkv split (rank-5 transpose), attention, feed-forward", async () => {
    const [batch, seq, d, heads] = [2, 16, 32, 2]
    const dh = d / heads
    const ids = Array.from({ length: batch * seq }, (_, i) => (i * 5 + 3) % 24)
    await gradCheck(
      [
        { shape: [24, d], seed: 31 },
        { shape: [d, 3 * d], seed: 32 },
        { shape: [d, 2 * d], seed: 33 },
        { shape: [2 * d, d], seed: 34 },
        { shape: [batch * seq], ints: ids },
      ],
      ([table, wqkv, w1, w2, idx]) => {
        const x = tf.gather(table!, idx!) // [batch·seq, d]
        const qkv = tf.transpose(tf.reshape(tf.matMul(x, wqkv!), [batch, seq, 3, heads, dh]), [2, 0, 3, 1, 4])
        const [q, k, v] = tf.unstack(qkv)
        const p = tf.softmax(tf.mul(tf.matMul(q!, k!, false, true), 1 / Math.sqrt(dh)))
        const ctx = tf.reshape(tf.transpose(tf.matMul(p, v!), [0, 2, 1, 3]), [batch * seq, d])
        const h = tf.add(x, ctx)
        return weighted(tf.add(h, tf.matMul(tf.relu(tf.matMul(h, w1!)), w2!)))
      },
    )
  })
})

describe("Identity (shared data)", () => {
  it("shares the input's heap memory instead of copying it", async () => {
    await use("wasm")
    const backend = asWasm(tf.backend())
    const x = make({ shape: [64, 32], seed: 3 })
    const before = backend.wasm.HEAPU8.length
    const y = tf.clone(x)
    expect(backend.dataIdMap.get(y.dataId)?.memoryOffset).toBe(backend.dataIdMap.get(x.dataId)?.memoryOffset)
    // The data outlives the first owner: dispose x, y still reads it.
    const want = Array.from(x.dataSync())
    x.dispose()
    expect(Array.from(y.dataSync())).toEqual(want)
    y.dispose()
    expect(backend.wasm.HEAPU8.length).toBe(before)
  })

  it("keeps gradients equal to cpu's through tensors saved for backprop", async () => {
    await gradCheck(
      [
        { shape: [2, 16, 24], seed: 4 },
        { shape: [24, 20], seed: 5 },
      ],
      ([x, w]) => weighted(tf.softmax(tf.tanh(tf.matMul(tf.reshape(x!, [32, 24]), w!)))),
    )
  })

  it("stops a repeated training step from allocating per saved tensor", async () => {
    await use("wasm")
    const backend = asWasm(tf.backend())
    const w = tf.variable(make({ shape: [32, 32], seed: 6 }))
    const x = make({ shape: [64, 32], seed: 7 })
    const optimizer = tf.train.sgd(0.01)
    const step = () => optimizer.minimize(() => weighted(tf.tanh(tf.matMul(tf.tanh(x), w))), false, [w])
    step()
    const numBytes = tf.memory().numBytes
    const malloc = backend.wasm as unknown as { _malloc(n: number): number }
    const original = malloc._malloc
    let mallocs = 0
    malloc._malloc = (n) => {
      mallocs++
      return original(n)
    }
    try {
      for (let i = 0; i < 3; i++) step()
    } finally {
      malloc._malloc = original
    }
    // Stock Identity copies each tensor tfjs saves for backprop: 40 allocations per step instead of 28.
    expect(mallocs / 3).toBe(STEP_MALLOCS)
    expect(tf.memory().numBytes).toBe(numBytes)
    tf.dispose([w, x])
    optimizer.dispose()
  })
})

describe("assertAllocated", () => {
  const backendAt = (memoryOffset: number) =>
    ({
      wasm: { HEAPU8: new Uint8Array(8) },
      dataIdMap: { get: () => ({ id: 1, memoryOffset }) },
    }) as unknown as Parameters<typeof assertAllocated>[0]
  const info = (shape: number[]) => ({ dataId: {}, shape, dtype: "float32" as const })

  it("rejects a non-empty tensor that malloc put at 0 (heap exhausted)", () => {
    expect(() => assertAllocated(backendAt(0), info([4096, 64]))).toThrow(
      "wasm kernel: out of wasm memory allocating [4096, 64] (heap 8 bytes)",
    )
  })

  it("accepts offsets past 2 GiB and empty tensors at 0", () => {
    expect(assertAllocated(backendAt(2 ** 31 + 8), info([4])).shape).toEqual([4])
    expect(assertAllocated(backendAt(4_283_293_288), info([4])).shape).toEqual([4])
    expect(assertAllocated(backendAt(0), info([0, 4])).shape).toEqual([0, 4])
  })
})
