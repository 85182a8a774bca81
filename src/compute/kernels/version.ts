/** Bumped whenever a kernel here can compute different numbers: it goes into backend versions and fingerprints. */
export const WASM_KERNELS_VERSION = "2"
