/**
 * The fast path of YAML parsing: the data of a plain, valid YAML file from `js-yaml`, which parses a
 * 1,000-stage pipeline (92 KB) in ~0.07 s where `yaml` takes ~0.35 s on a fresh process (it builds the full
 * syntax tree that located diagnostics need). `yaml` stays the reference: whatever this path declines, and
 * every file with an error, is parsed by `source-map.ts` with `yaml`, which says where and what is wrong.
 *
 * It gives the value `yaml` gives (YAML 1.2 core schema, `uniqueKeys`, keys made strings as `yaml`'s `toJS`
 * does) or `undefined`: where it cannot vouch for the same value, it declines. The two parsers differ at the edges: `js-yaml` accepts a key
 * that follows other content on its line (`- "a"  b: c`), which `yaml` rejects, and each reads a few rare forms
 * its own way (a lone CR, tabs before content, blank lines in an escaped double-quoted break, whitespace-only
 * lines under an indentation indicator or at the end of a `|+` block, a `:` that starts a line inside a flow
 * mapping). So this path declines, before or after
 * `js-yaml`'s event parse:
 * - a lone `\r`, a tab in a line's indentation, a byte-order mark anywhere, a line over 1,000 characters
 *   (YAML limits implicit keys to 1,024), a line starting with `%`, `---` or `...` (directives and
 *   document markers), a block scalar header with an indentation indicator or keep chomping (`|2`, `|+`);
 * - more than one document; an anchor, an alias or a tag; a plain or quoted scalar that spans lines; a key of
 *   a block mapping that does not start its line (after any `- `); a flow collection whose entries span
 *   lines; an empty, null or complex key.
 * A pipeline written as pipelines usually are (block mappings, flow lists, `|` and `>` commands) passes.
 * `test/yaml-fast.test.ts` compares both parsers on every YAML file of the project and on seeded random
 * edits of them, and on random documents `yaml` writes.
 */
import {
  COLLECTION_STYLE,
  constructFromEvents,
  defineMappingTag,
  defineScalarTag,
  EVENT_ID,
  type Event,
  NOT_RESOLVED,
  parseEvents,
  SCALAR_STYLE,
  Schema,
  seqTag,
  strTag,
} from "js-yaml"

/**
 * A plain scalar's implicit type, resolved as `yaml`'s core schema does (`yaml/dist/schema/core`). Named
 * outside `tag:yaml.org,2002:`, so that an explicit `!!int` or `!!float` finds no tag and is left to `yaml`.
 */
const implicit = (
  name: string,
  test: RegExp,
  construct: (source: string) => unknown,
  firstChars: ReadonlyArray<string>,
) =>
  defineScalarTag(`tag:pipeline.fast-path:${name}`, {
    implicit: true,
    implicitFirstChars: firstChars,
    resolve: (source, isExplicit) => (!isExplicit && test.test(source) ? construct(source) : NOT_RESOLVED),
    identify: () => false,
  })

const DIGITS = [..."0123456789"]
const NUMBER_START = ["-", "+", ".", ...DIGITS]

/** Keys as `yaml`'s `toJS` makes them: `String(key)`; a null or complex key declines the fast path. */
const mapping = defineMappingTag("tag:yaml.org,2002:map", {
  create: (): Record<string, unknown> => ({}),
  addPair: (map, key, value) => {
    if (key === null || typeof key === "object") return "an empty or complex key: left to yaml"
    const name = String(key)
    // as `yaml` does: an own property even for `__proto__` and names an object inherits
    if (name in map)
      Object.defineProperty(map, name, { value, writable: true, enumerable: true, configurable: true })
    else map[name] = value
    return ""
  },
  has: (map, key) => Object.hasOwn(map, String(key)),
  keys: (map) => Object.keys(map),
  get: (map, key) => map[String(key)],
  identify: () => false,
})

const SCHEMA = new Schema([
  strTag,
  seqTag,
  mapping,
  implicit("null", /^(?:~|[Nn]ull|NULL)?$/, () => null, ["", "~", "n", "N"]),
  implicit("bool", /^(?:[Tt]rue|TRUE|[Ff]alse|FALSE)$/, (s) => s[0] === "t" || s[0] === "T", [
    "t",
    "T",
    "f",
    "F",
  ]),
  implicit("int-octal", /^0o[0-7]+$/, (s) => Number.parseInt(s.substring(2), 8), ["0"]),
  implicit("int", /^[-+]?[0-9]+$/, (s) => Number.parseInt(s, 10), ["-", "+", ...DIGITS]),
  implicit("int-hex", /^0x[0-9a-fA-F]+$/, (s) => Number.parseInt(s.substring(2), 16), ["0"]),
  implicit(
    "float-special",
    /^(?:[-+]?\.(?:inf|Inf|INF)|\.nan|\.NaN|\.NAN)$/,
    (s) => (s.slice(-3).toLowerCase() === "nan" ? Number.NaN : s[0] === "-" ? -Infinity : Infinity),
    ["-", "+", "."],
  ),
  implicit(
    "float-exp",
    /^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)[eE][-+]?[0-9]+$/,
    Number.parseFloat,
    NUMBER_START,
  ),
  implicit("float", /^[-+]?(?:\.[0-9]+|[0-9]+\.[0-9]*)$/, Number.parseFloat, NUMBER_START),
])

/** Text this path declines before parsing (see the module comment). */
const DECLINED_TEXT = /\r(?!\n)|^[ \t]*\t|[|>](?:[-+]?[1-9]|\+)|^(?:%|---|\.\.\.)/m

/** The longest line this path takes. */
const MAX_LINE = 1000

/** Whether a line of `text` is longer than `MAX_LINE` (a loop: `/[^\n]{1001}/` took 7 ms on 92 KB). */
const hasLongLine = (text: string): boolean => {
  for (let from = 0; ; ) {
    const end = text.indexOf("\n", from)
    if ((end < 0 ? text.length : end) - from > MAX_LINE) return true
    if (end < 0) return false
    from = end + 1
  }
}

/** Whether the events hold only what this path vouches for. */
const plainEvents = (text: string, events: ReadonlyArray<Event>): boolean => {
  let documents = 0
  /** the collections open; for a block mapping, whether the node just read was a key */
  const open: Array<{ readonly blockMap: boolean; key: boolean }> = []
  /** where the outermost flow collection open starts (-1: none), and how many collections were open then */
  let flowStart = -1
  let flowDepth = 0
  /**
   * Whether a node that starts at `at` may start there: a block mapping's key starts its line, and a node in
   * a flow collection starts on the collection's first line.
   */
  const startsWell = (at: number): boolean => {
    if (flowStart >= 0 && text.lastIndexOf("\n", at - 1) >= flowStart) return false
    const parent = open[open.length - 1]
    if (parent === undefined || !parent.blockMap) return true
    parent.key = !parent.key
    if (!parent.key) return true
    const lineStart = text.lastIndexOf("\n", at - 1) + 1
    return /^(?: *- +)* *$/.test(text.slice(lineStart, at))
  }
  for (const e of events) {
    switch (e.type) {
      case EVENT_ID.DOCUMENT:
        if (++documents > 1 || e.directives.length > 0) return false
        break
      case EVENT_ID.ALIAS:
        return false
      case EVENT_ID.SEQUENCE:
      case EVENT_ID.MAPPING:
        if (e.anchorStart !== -1 || e.tagStart !== -1 || !startsWell(e.start)) return false
        if (e.style === COLLECTION_STYLE.FLOW && flowStart < 0) {
          flowStart = e.start
          flowDepth = open.length
        }
        open.push({ blockMap: e.type === EVENT_ID.MAPPING && e.style === COLLECTION_STYLE.BLOCK, key: false })
        break
      case EVENT_ID.POP:
        open.pop()
        if (open.length === flowDepth) flowStart = -1
        break
      case EVENT_ID.SCALAR: {
        if (e.anchorStart !== -1 || e.tagStart !== -1) return false
        const block = e.style === SCALAR_STYLE.LITERAL_BLOCK || e.style === SCALAR_STYLE.FOLDED_BLOCK
        if (!block && text.slice(e.valueStart, e.valueEnd).includes("\n")) return false
        const quoted = e.style === SCALAR_STYLE.SINGLE_QUOTED || e.style === SCALAR_STYLE.DOUBLE_QUOTED
        if (!startsWell(quoted ? e.valueStart - 1 : e.valueStart)) return false
        break
      }
    }
  }
  return documents === 1
}

/** The data of `text` as `yaml` reads it, or `undefined` where `yaml` must parse it (see above). */
export const fastYaml = (text: string): { readonly value: unknown } | undefined => {
  if (DECLINED_TEXT.test(text) || text.includes("\ufeff") || hasLongLine(text)) return undefined
  try {
    const events = parseEvents(text, {})
    if (!plainEvents(text, events)) return undefined
    const documents = constructFromEvents(events, { source: text, schema: SCHEMA, maxAliases: 0 })
    return documents.length === 1 ? { value: documents[0] } : undefined
  } catch {
    return undefined // a syntax error, a duplicate key, a key left to yaml: yaml says what and where
  }
}
