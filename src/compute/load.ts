/**
 * Loading TensorFlow.js and the optional compute packages, late.
 *
 * Importing `@tensorflow/tfjs` costs about a second, so nothing imports it until a backend is needed. The
 * specifier goes through a variable on purpose: a bundler leaves such an `import()` alone, so the bundled CLI
 * loads these packages from `node_modules` at run time. They cannot be bundled anyway: the wasm backend finds its
 * `.wasm` files next to its own module, and `webgpu` loads a native `dawn.node` from its package folder.
 */
import type * as Tf from "@tensorflow/tfjs"

/** The `@tensorflow/tfjs` namespace. */
export type TfModule = typeof Tf

/** `import(specifier)`, which a bundler does not follow. */
export const importLate = (specifier: string): Promise<unknown> => import(specifier)

let tf: Promise<TfModule> | undefined

/** `@tensorflow/tfjs`, imported once. Its console chatter is turned off: our callers report what matters. */
export const loadTf = (): Promise<TfModule> => {
  tf ??= (importLate("@tensorflow/tfjs") as Promise<TfModule>).then((m) => {
    // `PROD` only silences tfjs's console warnings (the "install tfjs-node" banner, re-registration notices).
    m.env().set("PROD", true)
    return m
  })
  return tf
}

/** The first line of an error's message, for a one-line reason. */
export const firstLine = (e: unknown): string =>
  (e instanceof Error ? e.message : String(e))
    .split("\n")
    .find((l) => l.trim() !== "")
    ?.trim() ?? "unknown error"
