/**
 * Hugging Face `safetensors` files, read and written without Python.
 *
 * Layout: an unsigned 64-bit little-endian header length N, N bytes of UTF-8 JSON (padded with spaces),
 * then the data section. The header maps each tensor name to `{dtype, shape, data_offsets: [begin, end]}`
 * (offsets relative to the data section) and may hold a `__metadata__` string map. The header is checked
 * the way the reference (Rust) implementation checks it: the tensors must tile the data section exactly,
 * in order, with no gap and no overlap, and each one's byte length must match its dtype and shape.
 *
 * Reading converts to what TensorFlow.js computes with: floating dtypes (F64, F32, F16, BF16) to
 * `Float32Array`, integer ones (I64, I32, ... BOOL) to `Int32Array`, refusing 64-bit values that do not
 * fit in 32 bits.
 */
import { readFile } from "node:fs/promises"
import { endianness } from "node:os"
import { SafetensorsInvalid } from "./errors.js"

/** The dtypes the format defines. */
export type SafetensorsDtype =
  | "F64"
  | "F32"
  | "F16"
  | "BF16"
  | "I64"
  | "I32"
  | "I16"
  | "I8"
  | "U64"
  | "U32"
  | "U16"
  | "U8"
  | "BOOL"
  | "F8_E4M3"
  | "F8_E5M2"

const DTYPE_BYTES: Readonly<Record<SafetensorsDtype, number>> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U64: 8,
  U32: 4,
  U16: 2,
  U8: 1,
  BOOL: 1,
  F8_E4M3: 1,
  F8_E5M2: 1,
}

/** The reference implementation's bound; a larger header is an attack or a corrupt file. */
export const MAX_HEADER_BYTES = 100_000_000

/** Where one tensor lies in the data section. */
export interface TensorInfo {
  readonly dtype: SafetensorsDtype
  readonly shape: ReadonlyArray<number>
  /** byte offsets into the data section, `end` exclusive */
  readonly begin: number
  readonly end: number
}

/** A decoded tensor: floats as float32, integers as int32. */
export type DecodedTensor =
  | { readonly dtype: "float32"; readonly shape: ReadonlyArray<number>; readonly values: Float32Array }
  | { readonly dtype: "int32"; readonly shape: ReadonlyArray<number>; readonly values: Int32Array }

/** A parsed, validated safetensors file; tensors are decoded on demand. */
export interface SafetensorsFile {
  readonly file: string
  readonly metadata: Readonly<Record<string, string>>
  readonly tensors: ReadonlyMap<string, TensorInfo>
  /** Decode one tensor; throws `SafetensorsInvalid` for an unknown name or an unconvertible value. */
  readonly read: (name: string) => DecodedTensor
}

const LITTLE_ENDIAN_HOST = endianness() === "LE"

const isRecord = (x: unknown): x is Record<string, unknown> =>
  typeof x === "object" && x !== null && !Array.isArray(x)

const isCount = (x: unknown): x is number => typeof x === "number" && Number.isSafeInteger(x) && x >= 0

/** Parse and validate a whole safetensors file held in memory. `file` is used in error messages. */
export const parseSafetensors = (bytes: Uint8Array, file: string): SafetensorsFile => {
  const fail = (message: string, tensor?: string): never => {
    throw new SafetensorsInvalid({
      file,
      ...(tensor === undefined ? {} : { tensor }),
      message: `${file}${tensor === undefined ? "" : ` (tensor "${tensor}")`}: ${message}`,
    })
  }
  if (bytes.length < 8) {
    fail(`not a safetensors file: ${bytes.length} bytes is shorter than the 8-byte header length`)
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const headerLength = view.getBigUint64(0, true)
  if (headerLength > BigInt(MAX_HEADER_BYTES)) {
    fail(`header length ${headerLength} exceeds the ${MAX_HEADER_BYTES}-byte limit; the file is corrupt`)
  }
  const n = Number(headerLength)
  if (8 + n > bytes.length) {
    fail(`header length ${n} runs past the end of the file (${bytes.length} bytes); the file is truncated`)
  }
  let headerText: string
  try {
    headerText = new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, 8 + n))
  } catch {
    return fail("the header is not valid UTF-8")
  }
  if (!headerText.startsWith("{")) fail("the header does not start with '{'; this is not a safetensors file")
  let header: unknown
  try {
    header = JSON.parse(headerText)
  } catch (e) {
    return fail(`the header is not valid JSON: ${(e as Error).message}`)
  }
  if (!isRecord(header)) return fail("the header is not a JSON object")

  let metadata: Record<string, string> = {}
  const tensors = new Map<string, TensorInfo>()
  for (const [name, entry] of Object.entries(header)) {
    if (name === "__metadata__") {
      if (!isRecord(entry) || !Object.values(entry).every((v) => typeof v === "string")) {
        fail("__metadata__ must be an object whose values are all strings")
      }
      metadata = entry as Record<string, string>
      continue
    }
    if (!isRecord(entry)) return fail("the entry is not an object", name)
    const { dtype, shape, data_offsets: offsets } = entry
    if (typeof dtype !== "string" || !(dtype in DTYPE_BYTES)) {
      return fail(`unknown dtype ${JSON.stringify(dtype)}`, name)
    }
    if (!Array.isArray(shape) || !shape.every(isCount)) {
      return fail(`shape must be a list of non-negative integers, not ${JSON.stringify(shape)}`, name)
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount)) {
      return fail(`data_offsets must be [begin, end], not ${JSON.stringify(offsets)}`, name)
    }
    const [begin, end] = offsets as [number, number]
    if (end < begin) fail(`data_offsets [${begin}, ${end}] end before they begin`, name)
    const elements = (shape as Array<number>).reduce((a, b) => a * b, 1)
    const expected = elements * DTYPE_BYTES[dtype as SafetensorsDtype]
    if (end - begin !== expected) {
      fail(
        `data_offsets [${begin}, ${end}] span ${end - begin} bytes, but ${dtype} [${shape.join(", ")}] needs ${expected}`,
        name,
      )
    }
    tensors.set(name, { dtype: dtype as SafetensorsDtype, shape: shape as Array<number>, begin, end })
  }

  const dataStart = 8 + n
  const dataLength = bytes.length - dataStart
  const ordered = [...tensors.entries()].sort((a, b) => a[1].begin - b[1].begin || a[1].end - b[1].end)
  let covered = 0
  let previous: string | undefined
  for (const [name, info] of ordered) {
    if (info.begin < covered) {
      fail(
        `data_offsets [${info.begin}, ${info.end}] overlap tensor "${previous}" (which ends at ${covered})`,
        name,
      )
    }
    if (info.begin > covered) {
      fail(`there is a gap in the data section before this tensor (bytes ${covered} to ${info.begin})`, name)
    }
    if (info.end > dataLength) {
      fail(`data_offsets [${info.begin}, ${info.end}] run past the data section (${dataLength} bytes)`, name)
    }
    covered = info.end
    previous = name
  }
  if (covered !== dataLength) {
    fail(`the data section is ${dataLength} bytes but the tensors cover only ${covered}`)
  }

  const read = (name: string): DecodedTensor => {
    const info = tensors.get(name)
    if (info === undefined) return fail("no such tensor in the file", name)
    const raw = bytes.subarray(dataStart + info.begin, dataStart + info.end)
    try {
      return decode(info, raw)
    } catch (e) {
      return fail((e as Error).message, name)
    }
  }
  return { file, metadata, tensors, read }
}

/** Read and validate a safetensors file. */
export const readSafetensors = async (path: string): Promise<SafetensorsFile> => {
  let bytes: Buffer
  try {
    bytes = await readFile(path)
  } catch (e) {
    throw new SafetensorsInvalid({ file: path, message: `cannot read ${path}: ${(e as Error).message}` })
  }
  return parseSafetensors(bytes, path)
}

/** `raw` copied into a fresh, aligned buffer, as little-endian words of `width` bytes in host order. */
const aligned = (raw: Uint8Array, width: number): ArrayBuffer => {
  // A copy (not `raw.slice()`, which on a Node Buffer is a view into the whole file).
  const copy = new Uint8Array(raw)
  if (!LITTLE_ENDIAN_HOST && width > 1) {
    for (let i = 0; i < copy.length; i += width) copy.subarray(i, i + width).reverse()
  }
  return copy.buffer
}

const decode = (info: TensorInfo, raw: Uint8Array): DecodedTensor => {
  const shape = info.shape
  const floats = (values: Float32Array): DecodedTensor => ({ dtype: "float32", shape, values })
  const ints = (values: Int32Array): DecodedTensor => ({ dtype: "int32", shape, values })
  switch (info.dtype) {
    case "F32":
      return floats(new Float32Array(aligned(raw, 4)))
    case "F64":
      return floats(Float32Array.from(new Float64Array(aligned(raw, 8))))
    case "F16":
      return floats(f16ToF32(new Uint16Array(aligned(raw, 2))))
    case "BF16": {
      const half = new Uint16Array(aligned(raw, 2))
      const words = new Uint32Array(half.length)
      for (let i = 0; i < half.length; i++) words[i] = half[i]! << 16
      return floats(new Float32Array(words.buffer))
    }
    case "I64":
      return ints(narrow(new BigInt64Array(aligned(raw, 8))))
    case "U64":
      return ints(narrow(new BigUint64Array(aligned(raw, 8))))
    case "I32":
      return ints(new Int32Array(aligned(raw, 4)))
    case "U32":
      return ints(narrow(new Uint32Array(aligned(raw, 4))))
    case "I16":
      return ints(Int32Array.from(new Int16Array(aligned(raw, 2))))
    case "U16":
      return ints(Int32Array.from(new Uint16Array(aligned(raw, 2))))
    case "I8":
      return ints(Int32Array.from(new Int8Array(aligned(raw, 1))))
    case "U8":
    case "BOOL":
      return ints(Int32Array.from(raw))
    case "F8_E4M3":
    case "F8_E5M2":
      throw new Error(`dtype ${info.dtype} is not supported; convert the checkpoint to F32, F16 or BF16`)
  }
}

const INT32_MIN = -(2 ** 31)
const INT32_MAX = 2 ** 31 - 1

/** 64- or unsigned 32-bit integers as int32, refusing any that do not fit. */
const narrow = (xs: BigInt64Array | BigUint64Array | Uint32Array): Int32Array => {
  const out = new Int32Array(xs.length)
  for (let i = 0; i < xs.length; i++) {
    const v = Number(xs[i]!)
    if (v < INT32_MIN || v > INT32_MAX) {
      throw new Error(`element ${i} is ${xs[i]}, which does not fit in a 32-bit integer`)
    }
    out[i] = v
  }
  return out
}

/** IEEE half-precision bit patterns to float32 values (exactly: every half is a float32). */
export const f16ToF32 = (half: Uint16Array): Float32Array => {
  const out = new Float32Array(half.length)
  for (let i = 0; i < half.length; i++) {
    const h = half[i]!
    const sign = h & 0x8000 ? -1 : 1
    const exp = (h >> 10) & 0x1f
    const mant = h & 0x3ff
    out[i] =
      exp === 0
        ? sign * mant * 2 ** -24
        : exp === 0x1f
          ? mant === 0
            ? sign * Number.POSITIVE_INFINITY
            : Number.NaN
          : sign * (1 + mant / 1024) * 2 ** (exp - 15)
  }
  return out
}

const f32 = new Float32Array(1)
const u32 = new Uint32Array(f32.buffer)

/** A float32 value's nearest half-precision bit pattern (ties to even; overflow to infinity). */
export const f32ToF16Bits = (value: number): number => {
  f32[0] = value
  const x = u32[0]!
  const sign = (x >>> 16) & 0x8000
  const exp = (x >>> 23) & 0xff
  let mant = x & 0x7fffff
  if (exp === 0xff) return sign | 0x7c00 | (mant === 0 ? 0 : 0x200)
  const e = exp - 127 + 15
  if (e >= 0x1f) return sign | 0x7c00
  if (e <= 0) {
    if (e < -10) return sign
    mant |= 0x800000
    const shift = 14 - e
    let half = mant >>> shift
    const rem = mant & ((1 << shift) - 1)
    const halfway = 1 << (shift - 1)
    if (rem > halfway || (rem === halfway && half & 1)) half++
    return sign | half
  }
  let half = (e << 10) | (mant >>> 13)
  const rem = mant & 0x1fff
  // A carry out of the mantissa correctly bumps the exponent (and reaches infinity at the top).
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++
  return sign | half
}

/** A float32 value's nearest bfloat16 bit pattern (ties to even). */
export const f32ToBf16Bits = (value: number): number => {
  f32[0] = value
  const x = u32[0]!
  if ((x & 0x7f800000) === 0x7f800000 && (x & 0x7fffff) !== 0) return ((x >>> 16) & 0x8000) | 0x7fc0
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff
}

/** A tensor to write: the values are converted to `dtype` (rounding to nearest for F16 and BF16). */
export interface TensorToWrite {
  readonly dtype: "F32" | "F16" | "BF16" | "I64" | "I32"
  readonly shape: ReadonlyArray<number>
  readonly values: ArrayLike<number>
}

const encodeValues = (t: TensorToWrite): Uint8Array => {
  const n = t.values.length
  switch (t.dtype) {
    case "F32":
      return new Uint8Array(Float32Array.from(t.values).buffer)
    case "I32":
      return new Uint8Array(Int32Array.from(t.values).buffer)
    case "I64":
      return new Uint8Array(BigInt64Array.from(Array.from(t.values, (v) => BigInt(v))).buffer)
    case "F16":
    case "BF16": {
      const bits = t.dtype === "F16" ? f32ToF16Bits : f32ToBf16Bits
      const out = new Uint16Array(n)
      for (let i = 0; i < n; i++) out[i] = bits(t.values[i]!)
      return new Uint8Array(out.buffer)
    }
  }
}

/**
 * Encode tensors (in name order) and optional `__metadata__` as a safetensors file. Assumes a
 * little-endian host, like every platform Node supports.
 */
export const encodeSafetensors = (
  tensors: Readonly<Record<string, TensorToWrite>>,
  metadata?: Readonly<Record<string, string>>,
): Uint8Array => {
  const names = Object.keys(tensors).sort()
  const header: Record<string, unknown> = {}
  if (metadata !== undefined) header.__metadata__ = metadata
  const chunks: Array<Uint8Array> = []
  let offset = 0
  for (const name of names) {
    const t = tensors[name]!
    const elements = t.shape.reduce((a, b) => a * b, 1)
    if (elements !== t.values.length) {
      throw new Error(
        `tensor "${name}": shape [${t.shape.join(", ")}] needs ${elements} values, got ${t.values.length}`,
      )
    }
    const data = encodeValues(t)
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + data.length] }
    chunks.push(data)
    offset += data.length
  }
  let json = JSON.stringify(header)
  // Pad the header with spaces so the data section starts 8-byte aligned, as the reference writer does.
  const jsonBytes = new TextEncoder().encode(json).length
  json += " ".repeat((8 - (jsonBytes % 8)) % 8)
  const headerBytes = new TextEncoder().encode(json)
  const out = new Uint8Array(8 + headerBytes.length + offset)
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.length), true)
  out.set(headerBytes, 8)
  let at = 8 + headerBytes.length
  for (const c of chunks) {
    out.set(c, at)
    at += c.length
  }
  return out
}
