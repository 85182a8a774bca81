import { describe, expect, it } from "vitest"
import { SafetensorsInvalid } from "../src/model/errors.js"
import {
  encodeSafetensors,
  f32ToBf16Bits,
  f32ToF16Bits,
  parseSafetensors,
  type TensorToWrite,
} from "../src/model/safetensors.js"

const FILE = "ckpt/model.safetensors"

/** A file with this header (an object, or raw text) and `dataBytes` zero bytes of data. */
const raw = (header: unknown, dataBytes: number): Uint8Array => {
  const text = typeof header === "string" ? header : JSON.stringify(header)
  const h = new TextEncoder().encode(text)
  const out = new Uint8Array(8 + h.length + dataBytes)
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true)
  out.set(h, 8)
  return out
}

/** The error `f` throws, which must be a SafetensorsInvalid. */
const failure = (f: () => unknown): SafetensorsInvalid => {
  try {
    f()
  } catch (e) {
    expect(e).toBeInstanceOf(SafetensorsInvalid)
    return e as SafetensorsInvalid
  }
  throw new Error("expected a SafetensorsInvalid")
}

const roundTrip = (t: TensorToWrite) => parseSafetensors(encodeSafetensors({ t }), FILE).read("t")

describe("safetensors conversion", () => {
  it("keeps F32 values and metadata exactly, and pads the header to 8 bytes", () => {
    const values = Float32Array.from([0, -0, 1.5, -3.25e-30, 123456.789, Number.POSITIVE_INFINITY])
    const bytes = encodeSafetensors(
      {
        "a.weight": { dtype: "F32", shape: [2, 3], values },
        "b.bias": { dtype: "F32", shape: [0], values: [] },
      },
      { format: "pt" },
    )
    const headerLength = Number(new DataView(bytes.buffer).getBigUint64(0, true))
    expect(headerLength % 8).toBe(0)
    const file = parseSafetensors(bytes, FILE)
    expect(file.metadata).toEqual({ format: "pt" })
    expect([...file.tensors.keys()]).toEqual(["a.weight", "b.bias"])
    const a = file.read("a.weight")
    expect(a.dtype).toBe("float32")
    expect(a.shape).toEqual([2, 3])
    expect(a.values).toEqual(values)
    expect(Object.is(a.values[1], -0)).toBe(true)
    expect(file.read("b.bias").values.length).toBe(0)
  })

  it("decodes from a Node Buffer that is a view into a larger allocation, as readFile's can be", () => {
    const bytes = encodeSafetensors({ t: { dtype: "F32", shape: [3], values: [1, 2, 3] } })
    const pool = new Uint8Array(bytes.length + 5).fill(7)
    pool.set(bytes, 5)
    const t = parseSafetensors(Buffer.from(pool.buffer, 5, bytes.length), FILE).read("t")
    expect(Array.from(t.values)).toEqual([1, 2, 3])
  })

  it("rounds to F16 to nearest, ties to even, and reads F16 exactly", () => {
    const t = roundTrip({
      dtype: "F16",
      shape: [11],
      values: [1, -2, 0.1, 65504, 70000, 65520, 6e-8, 1e-9, 2049, 2051, Number.NaN],
    })
    expect(t.dtype).toBe("float32")
    expect(Array.from(t.values)).toEqual([
      1,
      -2,
      0.0999755859375,
      65504,
      Number.POSITIVE_INFINITY,
      Number.POSITIVE_INFINITY,
      2 ** -24,
      0,
      2048,
      2052,
      Number.NaN,
    ])
    expect(f32ToF16Bits(0.1)).toBe(0x2e66)
    expect(f32ToF16Bits(-0)).toBe(0x8000)
  })

  it("rounds to BF16 to nearest, ties to even, and reads BF16 exactly", () => {
    const t = roundTrip({
      dtype: "BF16",
      shape: [5],
      values: [1, 0.1, Math.PI, 1 + 2 ** -8, 1 + 3 * 2 ** -8],
    })
    expect(Array.from(t.values)).toEqual([1, 0.10009765625, 3.140625, 1, 1.015625])
    expect(f32ToBf16Bits(0.1)).toBe(0x3dcd)
  })

  it("reads I64 as int32 and refuses values that do not fit", () => {
    const t = roundTrip({ dtype: "I64", shape: [2, 2], values: [0, -1, 2147483647, -2147483648] })
    expect(t.dtype).toBe("int32")
    expect(Array.from(t.values)).toEqual([0, -1, 2147483647, -2147483648])
    const big = parseSafetensors(
      encodeSafetensors({ big: { dtype: "I64", shape: [2], values: [1, 2 ** 31] } }),
      FILE,
    )
    const e = failure(() => big.read("big"))
    expect(e.tensor).toBe("big")
    expect(e.message).toBe(
      `${FILE} (tensor "big"): element 1 is 2147483648, which does not fit in a 32-bit integer`,
    )
  })
})

describe("safetensors header validation", () => {
  const cases: Array<[string, Uint8Array, string]> = [
    [
      "a short file",
      new Uint8Array(4),
      "not a safetensors file: 4 bytes is shorter than the 8-byte header length",
    ],
    [
      "a header past the end",
      (() => {
        const b = raw({}, 0)
        new DataView(b.buffer).setBigUint64(0, 1000n, true)
        return b
      })(),
      "header length 1000 runs past the end of the file (10 bytes); the file is truncated",
    ],
    [
      "a huge header length",
      (() => {
        const b = raw({}, 0)
        new DataView(b.buffer).setBigUint64(0, 2n ** 40n, true)
        return b
      })(),
      "header length 1099511627776 exceeds the 100000000-byte limit; the file is corrupt",
    ],
    [
      "text that is not JSON",
      raw("PK\u0003\u0004", 0),
      "the header does not start with '{'; this is not a safetensors file",
    ],
    ["a JSON array", raw("[1]", 0), "the header does not start with '{'; this is not a safetensors file"],
    [
      "an unknown dtype",
      raw({ w: { dtype: "F128", shape: [1], data_offsets: [0, 16] } }, 16),
      '(tensor "w"): unknown dtype "F128"',
    ],
    [
      "a bad shape",
      raw({ w: { dtype: "F32", shape: [2, -1], data_offsets: [0, 8] } }, 8),
      '(tensor "w"): shape must be a list of non-negative integers, not [2,-1]',
    ],
    [
      "offsets that do not fit the shape",
      raw({ w: { dtype: "F32", shape: [2], data_offsets: [0, 4] } }, 4),
      '(tensor "w"): data_offsets [0, 4] span 4 bytes, but F32 [2] needs 8',
    ],
    [
      "overlapping tensors",
      raw(
        {
          a: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
          b: { dtype: "F32", shape: [2], data_offsets: [4, 12] },
        },
        12,
      ),
      '(tensor "b"): data_offsets [4, 12] overlap tensor "a" (which ends at 8)',
    ],
    [
      "a gap between tensors",
      raw(
        {
          a: { dtype: "F32", shape: [1], data_offsets: [0, 4] },
          b: { dtype: "F32", shape: [1], data_offsets: [8, 12] },
        },
        12,
      ),
      '(tensor "b"): there is a gap in the data section before this tensor (bytes 4 to 8)',
    ],
    [
      "a tensor past the data",
      raw({ a: { dtype: "F32", shape: [2], data_offsets: [0, 8] } }, 4),
      '(tensor "a"): data_offsets [0, 8] run past the data section (4 bytes)',
    ],
    [
      "data no tensor covers",
      raw({ a: { dtype: "F32", shape: [1], data_offsets: [0, 4] } }, 8),
      "the data section is 8 bytes but the tensors cover only 4",
    ],
    [
      "metadata that is not strings",
      raw({ __metadata__: { epoch: 3 } }, 0),
      "__metadata__ must be an object whose values are all strings",
    ],
  ]
  for (const [what, bytes, message] of cases) {
    it(`refuses ${what}`, () => {
      const e = failure(() => parseSafetensors(bytes, FILE))
      expect(e._tag).toBe("SafetensorsInvalid")
      expect(e.file).toBe(FILE)
      expect(e.message).toBe(`${FILE}${message.startsWith("(") ? " " : ": "}${message}`)
    })
  }

  it("refuses a header that is not valid JSON, quoting the parser", () => {
    expect(failure(() => parseSafetensors(raw("{oops", 0), FILE)).message).toMatch(
      /^ckpt\/model\.safetensors: the header is not valid JSON: /,
    )
  })

  it("names the tensor when asked for one it does not hold", () => {
    const file = parseSafetensors(raw({}, 0), FILE)
    expect(failure(() => file.read("nope")).message).toBe(
      `${FILE} (tensor "nope"): no such tensor in the file`,
    )
  })
})
