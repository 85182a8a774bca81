/**
 * Canonical JSON: object keys sorted at every level, no whitespace. Digests of structured data (fingerprints,
 * manifests) must not depend on key insertion order. `undefined` members are dropped, as JSON.stringify does.
 */
export const canonicalJson = (value: unknown): string => JSON.stringify(sortKeys(value))

const sortKeys = (value: unknown): unknown => {
  if (Array.isArray(value)) return value.map(sortKeys)
  if (value !== null && typeof value === "object") {
    // No prototype: a key named "__proto__" is then data like any other, not the object's prototype.
    const out: Record<string, unknown> = Object.create(null)
    for (const key of Object.keys(value).sort()) {
      const v = (value as Record<string, unknown>)[key]
      if (v !== undefined) out[key] = sortKeys(v)
    }
    return out
  }
  return value
}
