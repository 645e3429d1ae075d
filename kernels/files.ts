// Writing a file so that it is either absent or complete under its final name: the bytes go to a
// temporary file beside it, are fsynced, and the temporary file is renamed into place. A failure
// removes the temporary file and says which path could not be written, and why.
import { randomBytes } from 'node:crypto';
import { open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

export async function writeFileAtomic(path: string, bytes: Uint8Array): Promise<void> {
  const temp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  let file;
  try {
    file = await open(temp, 'wx');
    await file.writeFile(bytes);
    await file.sync();
    await file.close();
    file = undefined;
    await rename(temp, path);
  } catch (err) {
    await file?.close().catch(() => {});
    await unlink(temp).catch(() => {});
    throw new Error(`cannot write ${path} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, { cause: err });
  }
}
