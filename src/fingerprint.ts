/**
 * The fingerprint: a stage's cache key, built here and nowhere else. Two runs of a stage with the same
 * fingerprint produce the same outputs, so a fingerprint seen before is restored from the store instead of
 * run. The README's "Fingerprint reference" lists what goes in; keep the two in step.
 *
 * In: the stage definition after interpolation (its command or built-in kind, version and `with`, its
 * outs' paths), the values of the params it declares, the content digest of every dep (upstream outs
 * included, which gives early cutoff: an upstream rerun that writes identical bytes changes nothing here),
 * its declared `env`, and the versions of the tools that change its results.
 * Out: the stage's name (a rename restores from the cache), `retries`, `retry_delay`, `timeout`,
 * `resources`, `needs` and `scratch`: they change how it runs, not what it produces.
 */
import { hash } from "node:crypto"
import { kinds } from "../stages/registry.js"
import { canonicalJson } from "./canonical-json.js"
import { computeIdentity } from "./compute/identity.js"
import type { Stage, StageAction } from "./model.js"

/** Bump when the meaning of a fingerprint changes: every stage then reruns once. */
export const FINGERPRINT_VERSION = 1

/** Everything a stage's outputs depend on. Its canonical JSON is hashed into the fingerprint. */
export interface FingerprintInput {
  readonly version: number
  readonly action: StageAction
  /** every dep with the digest of its content (a dir's manifest digest) */
  readonly deps: ReadonlyArray<{ readonly path: string; readonly digest: string }>
  readonly outs: ReadonlyArray<string>
  readonly params: Readonly<Record<string, unknown>>
  readonly env: Readonly<Record<string, string>>
  /** versions of the tools that change results (built-in kinds: the runtime; compute kinds: the backend's) */
  readonly tools: Readonly<Record<string, string>>
}

/**
 * The tool versions a stage's results depend on: for built-in kinds the Node major version, and for kinds that
 * compute with TensorFlow.js the compute identity (packages, kernels, GPU or not: src/compute/identity.ts).
 * Command stages run the user's tools, which we cannot see.
 */
export const toolVersions = (stage: Stage): Readonly<Record<string, string>> => {
  if (stage.action._tag !== "Builtin") return {}
  const node = { node: process.versions.node.split(".")[0] ?? "" }
  return kinds.get(stage.action.uses)?.compute === true ? { ...node, ...computeIdentity() } : node
}

/** Assemble a stage's fingerprint input from its definition and its deps' current digests. */
export const fingerprintInput = (
  stage: Stage,
  depDigests: ReadonlyMap<string, string>,
  tools: Readonly<Record<string, string>> = toolVersions(stage),
): FingerprintInput => ({
  version: FINGERPRINT_VERSION,
  action: stage.action,
  deps: stage.deps.map((path) => ({ path, digest: depDigests.get(path) ?? "missing" })),
  outs: stage.outs,
  params: stage.params,
  env: stage.env,
  tools,
})

/** The fingerprint: SHA-256 of the canonical JSON of its input. */
export const fingerprint = (input: FingerprintInput): string => hash("sha256", canonicalJson(input), "hex")
