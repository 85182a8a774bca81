/**
 * The absolute file behind each span and diagnostic the loader makes. A diagnostic names its file relative
 * to the loader's working directory, which the renderer may not know (a CLI test runs in-process with
 * another cwd); remembering the origin lets the renderer read the right file without widening the
 * Diagnostic type. A module of its own so that the renderer does not load the YAML parser.
 */

const origins = new WeakMap<object, string>()

/** Records that `located` (a span or a diagnostic) points into the file at absolute path `file`. */
export const setOrigin = (located: object, file: string): void => {
  origins.set(located, file)
}

/** The absolute path of the file a span or diagnostic points into, when the loader made it. */
export const originOf = (located: object): string | undefined => origins.get(located)
