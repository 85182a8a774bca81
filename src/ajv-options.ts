/**
 * The options of our one ajv instance, shared by the runtime compiler (`schema.ts`) and the build step that
 * precompiles the shipped schemas into standalone validators (`scripts/build.mjs`).
 */
export const AJV_OPTIONS = {
  // every problem at once, so a user fixes a file in one round
  allErrors: true,
  // the schemas are product: a typo in a keyword must fail the tests, not be ignored
  strict: true,
  // durations are `number | string`, `cmd` is `string | string[]`
  allowUnionTypes: true,
  // `parentSchema` lets error messages quote the property's description and list the allowed keys
  verbose: true,
  // built-in stages get their defaults written into `with:` so that spelling out a default does not
  // change the stage's fingerprint
  useDefaults: true,
} as const
