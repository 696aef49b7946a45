/** ImageFsInfo: bytes and inodes used by the image store, with its mountpoint. */
import type { CriContext } from './context.js';

export async function imageFsInfo(_req: unknown, ctx: CriContext) {
  const usage = await ctx.images.usage();
  return {
    imageFilesystems: [
      {
        timestamp: (BigInt(Date.now()) * 1_000_000n).toString(),
        fsId: { mountpoint: ctx.imageRoot },
        usedBytes: { value: String(usage.bytes) },
        inodesUsed: { value: String(usage.inodes) },
      },
    ],
    containerFilesystems: [],
  };
}
