/**
 * An e-mail message (RFC 5322 with MIME) reduced to the text a reader sees: the subject, a blank line, and
 * the body. The headers are dropped: in a spam corpus the relays, dates, addresses and the filter's own
 * headers give the label away, and a classifier trained on them learns nothing about text.
 *
 * The body is decoded as a mail reader would: quoted-printable and base64 undone, each part's charset
 * honoured (RFC 2047 encoded words in the subject too), `multipart/alternative` read through its plain
 * text part (its HTML part when there is none), other multiparts through all their text parts in order,
 * attachments and non-text parts left out, HTML reduced to its text.
 *
 * Why not a package (postal-mime, mailparser): we need only the text, never addresses, attachments or
 * dates; what is here is small, and it reads a message from raw bytes, so a part in Latin-1 or ISO-2022-JP
 * decodes with its own charset rather than being read as UTF-8 first (500 of SpamAssassin's messages are
 * not UTF-8).
 */

import { textDecoder } from "./ingest-decode.js"

/** A message's raw bytes as a "binary" string: one character per byte (Latin-1). */
type Bytes = string

interface Part {
  readonly headers: ReadonlyMap<string, string>
  readonly body: Bytes
}

/** Splits a message or a MIME part into its headers (lowercased names, unfolded) and its body. */
const splitPart = (raw: Bytes): Part => {
  const m = /\r?\n\r?\n/.exec(raw)
  const head = m === null ? raw : raw.slice(0, m.index)
  const body = m === null ? "" : raw.slice(m.index + m[0].length)
  const headers = new Map<string, string>()
  let name: string | undefined
  for (const line of head.split(/\r?\n/)) {
    if (/^[ \t]/.test(line) && name !== undefined) {
      headers.set(name, `${headers.get(name) ?? ""} ${line.trim()}`)
      continue
    }
    const colon = line.indexOf(":")
    // the mbox `From ` line and anything else that is not `Name: value` is not a header
    if (colon <= 0 || /\s/.test(line.slice(0, colon))) {
      name = undefined
      continue
    }
    name = line.slice(0, colon).toLowerCase()
    if (!headers.has(name)) headers.set(name, line.slice(colon + 1).trim())
    else name = undefined // the first of a repeated header counts
  }
  return { headers, body }
}

/** `text/plain; charset="iso-8859-1"` -> type `text/plain`, params `{charset: "iso-8859-1"}`. */
const parseContentType = (value: string | undefined): { type: string; params: Map<string, string> } => {
  const params = new Map<string, string>()
  if (value === undefined || value.trim() === "") return { type: "text/plain", params }
  const [type = "", ...rest] = value.split(";")
  for (const p of rest) {
    const eq = p.indexOf("=")
    if (eq < 0) continue
    params.set(
      p.slice(0, eq).trim().toLowerCase(),
      p
        .slice(eq + 1)
        .trim()
        .replace(/^"(.*)"$/s, "$1"),
    )
  }
  const t = type.trim().toLowerCase()
  return { type: t === "" || !t.includes("/") ? "text/plain" : t, params }
}

const fromBinary = (s: Bytes): Uint8Array => Buffer.from(s, "latin1")

const decodeQuotedPrintable = (s: Bytes): Bytes =>
  s
    .replace(/[ \t]+(?=\r?\n)/g, "")
    .replace(/=\r?\n/g, "")
    .replace(/=([0-9A-Fa-f]{2})/g, (_, hex: string) => String.fromCharCode(Number.parseInt(hex, 16)))

const decodeBase64 = (s: Bytes): Bytes =>
  Buffer.from(s.replace(/[^A-Za-z0-9+/]/g, ""), "base64").toString("latin1")

const utf8Fatal = new TextDecoder("utf-8", { fatal: true })
const cp1252 = textDecoder("windows-1252")

/**
 * Bytes to text in `charset`. No charset, US-ASCII, or one TextDecoder does not know: UTF-8 when the bytes
 * are valid UTF-8, else Windows-1252 (which every byte decodes in, as mail readers fall back).
 */
export const decodeCharset = (bytes: Bytes, charset: string | undefined): string => {
  const raw = fromBinary(bytes)
  const label = charset?.trim().toLowerCase()
  if (label !== undefined && label !== "" && label !== "us-ascii" && label !== "ascii") {
    try {
      return textDecoder(label)(raw)
    } catch {
      // an unknown charset name: fall through to the guess
    }
  }
  try {
    return utf8Fatal.decode(raw)
  } catch {
    return cp1252(raw)
  }
}

/** RFC 2047: `=?iso-8859-1?Q?=FCber?=` -> `über`; whitespace between two encoded words is dropped. */
export const decodeHeader = (value: Bytes): string => {
  const word = /=\?([^?\s]+)\?([QqBb])\?([^?\s]*)\?=/g
  let out = ""
  let last = 0
  let previousWasWord = false
  for (const m of value.matchAll(word)) {
    const between = value.slice(last, m.index)
    if (!(previousWasWord && /^\s*$/.test(between))) out += decodeCharset(between, undefined)
    const [, charset = "", encoding = "", text = ""] = m
    const bytes =
      encoding.toUpperCase() === "B"
        ? decodeBase64(text)
        : text
            .replace(/_/g, " ")
            .replace(/=([0-9A-Fa-f]{2})/g, (_, hex: string) => String.fromCharCode(Number.parseInt(hex, 16)))
    // RFC 2231 lets a language follow the charset: `us-ascii*en`
    out += decodeCharset(bytes, charset.split("*")[0])
    last = m.index + m[0].length
    previousWasWord = true
  }
  return out + decodeCharset(value.slice(last), undefined)
}

const ENTITIES: Readonly<Record<string, string>> = {
  nbsp: " ",
  amp: "&",
  lt: "<",
  gt: ">",
  quot: '"',
  apos: "'",
  copy: "©",
  reg: "®",
  trade: "™",
  hellip: "…",
  mdash: "—",
  ndash: "–",
  lsquo: "‘",
  rsquo: "’",
  ldquo: "“",
  rdquo: "”",
  bull: "•",
  middot: "·",
  euro: "€",
  pound: "£",
  yen: "¥",
  cent: "¢",
  deg: "°",
  times: "×",
  laquo: "«",
  raquo: "»",
}

const codePointText = (n: number): string =>
  Number.isInteger(n) && n > 0 && n <= 0x10ffff && !(n >= 0xd800 && n <= 0xdfff)
    ? String.fromCodePoint(n)
    : ""

/** The text of an HTML document: no tags, scripts, styles or comments; block ends as line breaks. */
export const htmlToText = (html: string): string =>
  html
    .replace(/<!--[\s\S]*?-->/g, " ")
    .replace(/<(script|style|head|title)\b[\s\S]*?<\/\1\s*>/gi, " ")
    .replace(/<br\s*\/?>/gi, "\n")
    .replace(/<\/?(p|div|tr|li|ul|ol|table|h[1-6]|blockquote|pre|center|hr)\b[^>]*>/gi, "\n")
    .replace(/<[^>]*>/g, "")
    .replace(/&(#x[0-9a-f]+|#\d+|[a-z]+);/gi, (whole, name: string) => {
      if (name[0] === "#")
        return codePointText(
          name[1] === "x" || name[1] === "X" ? Number.parseInt(name.slice(2), 16) : Number(name.slice(1)),
        )
      return ENTITIES[name.toLowerCase()] ?? whole
    })

/** Spaces collapsed within lines, blank-line runs collapsed to one blank line, trimmed. */
const tidy = (text: string): string =>
  text
    .replace(/\r\n?/g, "\n")
    .replace(/[^\S\n]+/g, " ")
    .replace(/ *\n */g, "\n")
    .replace(/\n{3,}/g, "\n\n")
    .trim()

// Header fields as they appear in a body: replies quote the headers of the message they answer, and
// forwards (inline, or as message/rfc822) carry whole header blocks, relays and addresses included.
const HEADER_LINE =
  /^[ \t]*(?:[A-Za-z+]{0,4}[>|][ \t]*)*(?:received|from|to|cc|bcc|date|sent|subject|message-id|return-path|delivered-to|reply-to|sender|in-reply-to|references|mime-version|content-[\w-]+|x-[\w-]+|list-[\w-]+|precedence|errors-to|organization|user-agent|importance):(?:[ \t]|$)/i
// ...of which these never start a line of prose: one alone is a header too; so is an address line
const MACHINE_HEADER =
  /^[ \t]*(?:[A-Za-z+]{0,4}[>|][ \t]*)*(?:(?:received|return-path|delivered-to|message-id|x-[\w-]+):(?:[ \t]|$)|(?:from|to|cc|reply-to|sender):[ \t].*@)/i

/**
 * Drops header blocks from a body: runs of two or more header lines (with their folded continuation
 * lines), and lone header lines that only machines write (`Received:`, `Message-ID:`, `X-...:`).
 */
export const stripHeaderBlocks = (text: string): string => {
  const lines = text.split("\n")
  const drop = new Array<boolean>(lines.length).fill(false)
  for (let i = 0; i < lines.length; ) {
    if (!HEADER_LINE.test(lines[i]!)) {
      i++
      continue
    }
    // the block: header lines, and continuation lines (indented, inside the same quoting) after one
    let end = i + 1
    let headers = 1
    let machine = MACHINE_HEADER.test(lines[i]!)
    while (end < lines.length) {
      const line = lines[end]!
      if (HEADER_LINE.test(line)) {
        headers++
        machine ||= MACHINE_HEADER.test(line)
      } else if (!/^[ \t]*(?:[A-Za-z+]{0,4}[>|][ \t]*)*[ \t]+\S/.test(line) || line.trim() === "") break
      end++
    }
    if (headers >= 2 || machine) drop.fill(true, i, end)
    i = end
  }
  return lines.filter((_, i) => !drop[i]).join("\n")
}

/** The readable text of a part: its text parts' text, in order, as chosen above. */
const partText = (part: Part, depth: number): string => {
  if (depth > 8) return "" // a pathological nesting: stop rather than recurse without end
  const { type, params } = parseContentType(part.headers.get("content-type"))
  const disposition = part.headers.get("content-disposition")?.toLowerCase() ?? ""
  if (disposition.startsWith("attachment")) return ""
  if (type.startsWith("multipart/")) {
    const children = multipartChildren(part.body, params.get("boundary"))
    // a boundary that never occurs: read the body as text rather than lose it
    if (children.length === 0) return tidy(decodeCharset(part.body, undefined))
    if (type === "multipart/alternative") {
      const plain = children.find(
        (c) => parseContentType(c.headers.get("content-type")).type === "text/plain",
      )
      const chosen = plain ?? children.find((c) => partText(c, depth + 1) !== "")
      return chosen === undefined ? "" : partText(chosen, depth + 1)
    }
    return children
      .map((c) => partText(c, depth + 1))
      .filter((t) => t !== "")
      .join("\n\n")
  }
  if (type === "message/rfc822") return partText(splitPart(part.body), depth + 1)
  if (type !== "text/plain" && type !== "text/html") return ""
  const encoding = part.headers.get("content-transfer-encoding")?.trim().toLowerCase()
  const bytes =
    encoding === "quoted-printable"
      ? decodeQuotedPrintable(part.body)
      : encoding === "base64"
        ? decodeBase64(part.body)
        : part.body
  const text = decodeCharset(bytes, params.get("charset"))
  return tidy(stripHeaderBlocks(type === "text/html" ? htmlToText(text) : text))
}

/** The parts between `--boundary` lines, up to `--boundary--`. */
const multipartChildren = (body: Bytes, boundary: string | undefined): Part[] => {
  if (boundary === undefined || boundary === "") return []
  const parts: Part[] = []
  const delimiter = `--${boundary}`
  let current: string[] | undefined
  for (const line of body.split(/\n/)) {
    const bare = line.replace(/\r$/, "").trimEnd()
    if (bare === `${delimiter}--`) break
    if (bare === delimiter) {
      if (current !== undefined) parts.push(splitPart(current.join("\n")))
      current = []
      continue
    }
    current?.push(line)
  }
  if (current !== undefined) parts.push(splitPart(current.join("\n")))
  return parts
}

/** A message's subject and body text, a blank line between them; `raw` is its bytes. */
export const mailText = (raw: Uint8Array): string => {
  const message = splitPart(Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString("latin1"))
  const subject = tidy(decodeHeader(message.headers.get("subject") ?? ""))
  const body = partText(message, 0)
  return [subject, body].filter((t) => t !== "").join("\n\n")
}
