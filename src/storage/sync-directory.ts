import fs from 'node:fs';

/** fsync of a file or a directory by its path, on the calling thread. */
export function syncPathNow(target: string): void {
  const fd = fs.openSync(target, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** As syncDirectory, on the calling thread. */
export function syncDirectoryNow(directory: string): void {
  syncPathNow(directory);
}

/** fsync of a directory, so that a file created or renamed in it survives a crash of the machine. */
export function syncDirectory(directory: string): Promise<void> {
  return new Promise((resolve, reject) => {
    fs.open(directory, 'r', (openError, fd) => {
      if (openError) {
        reject(openError);
        return;
      }
      fs.fsync(fd, (syncError) => fs.close(fd, () => (syncError ? reject(syncError) : resolve())));
    });
  });
}
