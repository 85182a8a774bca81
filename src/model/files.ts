/**
 * Writing a model folder all at once: the files go into a hidden temporary folder beside the target,
 * which is then renamed into place, so a reader sees the old folder or the new one, never a mix, and a
 * killed save leaves only a `.name.tmp-*` folder that the next save removes.
 */
import { mkdir, open, rm } from "node:fs/promises"
import { basename, dirname, join } from "node:path"
import { ioError, randomSuffix, removeLeftovers, swapIn } from "../fs-util.js"

/** Replace the folder `dir` by one holding exactly `files` (name -> content). */
export const writeDirAtomic = async (
  dir: string,
  files: ReadonlyArray<readonly [string, Uint8Array | string]>,
): Promise<void> => {
  const parent = dirname(dir)
  const name = basename(dir)
  await mkdir(parent, { recursive: true }).catch((e: unknown) => {
    throw ioError("create directory", parent, e)
  })
  await removeLeftovers(parent, name)
  const tmp = join(parent, `.${name}.tmp-${randomSuffix()}`)
  try {
    await mkdir(tmp)
    for (const [file, content] of files) {
      const path = join(tmp, file)
      const fh = await open(path, "wx", 0o644)
      try {
        await fh.writeFile(content)
        // The rename below publishes the folder; the data must be on disk before it is.
        await fh.sync()
      } catch (e) {
        throw ioError("write", join(dir, file), e)
      } finally {
        await fh.close()
      }
    }
    await swapIn(tmp, dir, true)
  } catch (e) {
    await rm(tmp, { recursive: true, force: true }).catch(() => undefined)
    throw ioError("write", dir, e)
  }
}
