/**
 * unpackLayer against layers built here with tar-stream (and GNU tar for a binary xattr), plain,
 * gzip and zstd: what lands on disk, overlayfs whiteouts, and the escapes it must refuse.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { tarOf, type Spec } from './tar-fixture.js';
import { AlreadyExists, DataLoss, EffectFailed, InvalidArgument, ResourceExhausted } from '../errors/catalogue.js';
import { unpackLayer } from './unpack.js';

/** Hands the bytes over in awkward pieces: the magic bytes split across chunks. */
async function* pieces(bytes: Buffer): AsyncGenerator<Uint8Array> {
  yield bytes.subarray(0, 1);
  yield bytes.subarray(1, 3);
  for (let at = 3; at < bytes.length; at += 7000) yield bytes.subarray(at, at + 7000);
}

const zstdOf = (tar: Buffer): Buffer => execFileSync('zstd', ['-q', '-c', '-3'], { input: tar, maxBuffer: 64 << 20 });

function sha256(bytes: Buffer): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

function xattr(path: string, name: string): string {
  return execFileSync('getfattr', ['--absolute-names', '-h', '-e', 'hex', '-n', name, path], { encoding: 'utf8' });
}

const T = new Date('2020-01-02T03:04:05Z');
const T2 = new Date('2021-06-07T08:09:10Z');
const BIG = randomBytes(1_500_000);

const RICH: Spec[] = [
  { name: 'etc/', type: 'directory', mode: 0o755, mtime: T },
  { name: 'etc/hostname', body: 'box\n', mode: 0o644, mtime: T2 },
  { name: 'home/user/', type: 'directory', mode: 0o750, uid: 1000, gid: 1000, mtime: T },
  { name: 'home/user/notes.txt', body: 'n', mode: 0o600, uid: 1000, gid: 1000, mtime: T, pax: { 'SCHILY.xattr.user.note': 'kept' } },
  { name: 'home/user/deep/er/', type: 'directory', mode: 0o700, uid: 1000, gid: 1000, mtime: T2 },
  { name: 'home/user/link-rel', type: 'symlink', linkname: '../../etc/hostname', uid: 1000, gid: 1000 },
  { name: 'usr/bin/su', body: '#!/bin/true\n', mode: 0o4755, mtime: T },
  { name: 'usr/bin/su-again', type: 'link', linkname: 'usr/bin/su' },
  { name: 'usr/bin/wall', body: 'w', mode: 0o2755, gid: 5 },
  { name: 'tmp/', type: 'directory', mode: 0o1777, mtime: T },
  { name: 'link-abs', type: 'symlink', linkname: '/etc/hostname' },
  { name: 'dev/null', type: 'character-device', devmajor: 1, devminor: 3, mode: 0o666 },
  { name: 'dev/sda', type: 'block-device', devmajor: 8, devminor: 0, mode: 0o660, gid: 6 },
  { name: 'run/fifo', type: 'fifo', mode: 0o620 },
  { name: '/etc/passwd', body: 'root:x:0:0::/root:/bin/sh\n' },
  { name: './usr/lib/../share/doc', body: 'doc' },
  { name: 'big.bin', body: BIG },
];

describe('unpackLayer', () => {
  let work = '';
  let n = 0;
  const fresh = () => join(work, `layer-${++n}`);

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'podchart-unpack-'));
  });
  after(async () => {
    await rm(work, { recursive: true, force: true });
  });

  /** Nothing named after the layer dir (neither it nor its temp dir) is left in `work`. */
  async function assertNothingLeft(dir: string): Promise<void> {
    const prefix = dir.slice(work.length + 1);
    assert.deepEqual((await readdir(work)).filter((name) => name.startsWith(prefix)), []);
  }

  test('a plain tar keeps modes, owners, times, links, devices, xattrs; diffId is the tar sha256', async () => {
    const tar = await tarOf(RICH);
    const dir = fresh();
    const result = await unpackLayer(Readable.from([tar]), dir);
    assert.deepEqual(result, { diffId: sha256(tar), size: tar.length });

    const st = async (p: string) => lstat(join(dir, p));
    assert.equal((await st('home/user')).mode & 0o7777, 0o750);
    assert.equal((await st('home/user')).uid, 1000);
    assert.equal((await st('home/user')).gid, 1000);
    // Directory times survive the children written after them.
    assert.equal((await st('home/user')).mtime.getTime(), T.getTime());
    assert.equal((await st('etc')).mtime.getTime(), T.getTime());
    assert.equal((await st('home/user/deep/er')).mode & 0o7777, 0o700);
    assert.equal((await st('home/user/deep/er')).mtime.getTime(), T2.getTime());
    assert.equal((await st('home')).mode & 0o7777, 0o755, 'implicit parent');
    assert.equal((await st('etc/hostname')).mtime.getTime(), T2.getTime());
    assert.equal((await st('home/user/notes.txt')).mode & 0o7777, 0o600);
    assert.equal((await st('home/user/notes.txt')).uid, 1000);
    assert.equal((await st('usr/bin/su')).mode & 0o7777, 0o4755, 'setuid kept');
    assert.equal((await st('usr/bin/wall')).mode & 0o7777, 0o2755, 'setgid kept');
    assert.equal((await st('usr/bin/wall')).gid, 5);
    assert.equal((await st('tmp')).mode & 0o7777, 0o1777, 'sticky kept');
    assert.equal(await readlink(join(dir, 'link-abs')), '/etc/hostname');
    assert.equal(await readlink(join(dir, 'home/user/link-rel')), '../../etc/hostname');
    assert.equal((await st('home/user/link-rel')).uid, 1000, 'symlink owner (lchown)');
    assert.equal((await st('usr/bin/su-again')).ino, (await st('usr/bin/su')).ino, 'hardlink shares the inode');
    assert.equal((await st('usr/bin/su')).nlink, 2);
    const nul = await st('dev/null');
    assert.ok(nul.isCharacterDevice());
    assert.equal(nul.rdev, (1 << 8) | 3);
    assert.equal(nul.mode & 0o7777, 0o666);
    const sda = await st('dev/sda');
    assert.ok(sda.isBlockDevice());
    assert.equal(sda.rdev, 8 << 8);
    assert.equal(sda.gid, 6);
    assert.ok((await st('run/fifo')).isFIFO());
    assert.equal((await st('run/fifo')).mode & 0o7777, 0o620);
    assert.match(xattr(join(dir, 'home/user/notes.txt'), 'user.note'), new RegExp(`user.note=0x${Buffer.from('kept').toString('hex')}`));
    assert.equal(await readFile(join(dir, 'etc/passwd'), 'utf8'), 'root:x:0:0::/root:/bin/sh\n', 'absolute entry lands inside');
    assert.equal(await readFile(join(dir, 'usr/share/doc'), 'utf8'), 'doc');
    assert.ok((await readFile(join(dir, 'big.bin'))).equals(BIG));
    await assertNothingLeft(`${dir}.tmp-`);
  });

  for (const [kind, compress] of [
    ['gzip', (tar: Buffer) => gzipSync(tar)],
    ['zstd', zstdOf],
  ] as const) {
    test(`a ${kind} layer, fed in odd chunks, unpacks the same with the uncompressed diffId`, async () => {
      const tar = await tarOf(RICH);
      const compressed = compress(tar);
      assert.notEqual(compressed.length, tar.length);
      const dir = fresh();
      assert.deepEqual(await unpackLayer(pieces(compressed), dir), { diffId: sha256(tar), size: tar.length });
      assert.ok((await readFile(join(dir, 'big.bin'))).equals(BIG));
      assert.equal((await lstat(join(dir, 'usr/bin/su'))).mode & 0o7777, 0o4755);
      assert.equal((await lstat(join(dir, 'home/user'))).mtime.getTime(), T.getTime());
    });
  }

  test('a binary xattr value from GNU tar survives byte for byte', async () => {
    const src = join(work, 'gnu-src');
    await mkdir(src);
    await writeFile(join(src, 'ping'), 'p');
    execFileSync('setfattr', ['-n', 'user.bin', '-v', '0x80ff000a41', join(src, 'ping')]);
    const tar = execFileSync('tar', ['--xattrs', '--xattrs-include=user.*', '-C', src, '-cf', '-', 'ping']);
    const dir = fresh();
    await unpackLayer(Readable.from([tar]), dir);
    assert.match(xattr(join(dir, 'ping'), 'user.bin'), /user\.bin=0x80ff000a41\n/);
  });

  test('whiteouts become 0/0 char devices; opaque markers become trusted.overlay.opaque=y', async () => {
    const tar = await tarOf([
      { name: 'keep', body: 'k' },
      { name: 'gone', body: 'g' },
      { name: '.wh.gone' },
      { name: 'sub/.wh.lower-only', uid: 7, gid: 7 },
      { name: 'opq/', type: 'directory', mode: 0o755, pax: { 'SCHILY.xattr.trusted.overlay.redirect': '/etc' } },
      { name: 'opq/.wh..wh..opq' },
      { name: 'opq/fresh', body: 'f' },
    ]);
    const dir = fresh();
    await unpackLayer(Readable.from([tar]), dir);
    for (const p of ['gone', 'sub/lower-only']) {
      const st = await lstat(join(dir, p));
      assert.ok(st.isCharacterDevice(), `${p} is a whiteout device`);
      assert.equal(st.rdev, 0);
    }
    assert.equal((await lstat(join(dir, 'sub/lower-only'))).uid, 7);
    assert.deepEqual((await readdir(dir)).sort(), ['gone', 'keep', 'opq', 'sub']);
    assert.deepEqual(await readdir(join(dir, 'opq')), ['fresh'], 'no marker file');
    assert.match(xattr(join(dir, 'opq'), 'trusted.overlay.opaque'), /trusted\.overlay\.opaque=0x79\n/);
    assert.throws(() => xattr(join(dir, 'opq'), 'trusted.overlay.redirect'), /No such attribute/, 'overlay xattrs from the image are dropped');
  });

  test('an existing symlink as the final component is replaced, not written through', async () => {
    const outside = join(work, 'outside-replace');
    await mkdir(outside);
    const tar = await tarOf([
      { name: 's', type: 'symlink', linkname: join(outside, 'replaced') },
      { name: 's', body: 'now a file' },
      { name: 'd/', type: 'directory' },
      { name: 'd', type: 'symlink', linkname: outside },
    ]);
    const dir = fresh();
    await unpackLayer(Readable.from([tar]), dir);
    assert.ok((await lstat(join(dir, 's'))).isFile());
    assert.equal(await readFile(join(dir, 's'), 'utf8'), 'now a file');
    assert.ok((await lstat(join(dir, 'd'))).isSymbolicLink());
    assert.deepEqual(await readdir(outside), []);
  });

  describe('refuses escapes and leaves nothing', () => {
    const cases: Array<[string, (outside: string) => Spec[], string]> = [
      ['../evil', () => [{ name: 'ok', body: 'x' }, { name: '../evil', body: 'e' }], '../evil'],
      ['a/../../evil', () => [{ name: 'a/../../evil', type: 'directory' }], 'a/../../evil'],
      ['a hardlink to ../../etc/passwd', () => [{ name: 'h', type: 'link', linkname: '../../etc/passwd' }], 'h'],
      [
        'an entry through a symlink to /',
        (outside) => [
          { name: 'root', type: 'symlink', linkname: '/' },
          { name: `root${outside}/planted`, body: 'p' },
        ],
        'root',
      ],
      [
        'a hardlink through a symlink to /',
        () => [
          { name: 'root', type: 'symlink', linkname: '/' },
          { name: 'pw', type: 'link', linkname: 'root/etc/passwd' },
        ],
        'pw',
      ],
      [
        'a whiteout through a symlink',
        (outside) => [
          { name: 'out', type: 'symlink', linkname: outside },
          { name: 'out/.wh.victim' },
        ],
        'out/.wh.victim',
      ],
    ];
    for (const [what, specs, name] of cases) {
      test(what, async () => {
        const outside = join(work, `outside-${++n}`);
        await mkdir(outside);
        await writeFile(join(outside, 'victim'), 'v');
        const dir = fresh();
        const tar = await tarOf(specs(outside));
        await assert.rejects(unpackLayer(Readable.from([tar]), dir), (err: unknown) => {
          assert.ok(err instanceof InvalidArgument, String(err));
          assert.match(err.message, new RegExp(`^layer entry ${name.replace(/\./g, '\\.')}\\S* escapes the layer directory$`));
          return true;
        });
        assert.equal(existsSync(dir), false);
        await assertNothingLeft(dir);
        assert.equal(existsSync(join(work, 'evil')), false);
        assert.deepEqual(await readdir(outside), ['victim']);
        assert.equal(await readFile(join(outside, 'victim'), 'utf8'), 'v');
      });
    }
  });

  /** DataLoss naming the layer and what to do, whatever the parser said (issue 12, item 14). */
  const broken = (kind: RegExp) => (err: unknown) =>
    err instanceof DataLoss && /^layer L is not a valid /.test(err.message) && kind.test(err.message) && /push it again$/.test(err.message);

  test('a corrupt gzip stream is DataLoss and leaves nothing', async () => {
    const dir = fresh();
    const bad = Buffer.concat([gzipSync(await tarOf(RICH)).subarray(0, 4000), randomBytes(2000)]);
    await assert.rejects(unpackLayer(Readable.from([bad]), dir, { what: 'layer L' }), broken(/gzip stream/));
    await assertNothingLeft(dir);
  });

  test('a corrupt or truncated zstd stream is DataLoss and leaves nothing', async () => {
    const zst = zstdOf(await tarOf(RICH));
    const flipped = Buffer.from(zst);
    flipped[40] = (flipped[40] ?? 0) ^ 0xff;
    for (const bad of [flipped, zst.subarray(0, zst.length - 100)]) {
      const dir = fresh();
      await assert.rejects(unpackLayer(pieces(bad), dir, { what: 'layer L' }), broken(/zstd stream|tar archive/));
      await assertNothingLeft(dir);
    }
  });

  test('a zstd frame that asks for a 1 GiB window is ResourceExhausted naming the layer, before any decoding', async () => {
    const dir = fresh();
    // Magic, a descriptor without single segment, window 2^(10+20); then one RLE block.
    const frame = Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x00, 20 << 3, 0x03, 0x00, 0x10, 0x00]);
    await assert.rejects(unpackLayer(Readable.from([frame]), dir, { what: 'layer L' }), (err: unknown) => err instanceof ResourceExhausted && /^layer L: a zstd frame needs a 1073741824-byte window/.test(err.message));
    await assertNothingLeft(dir);
  });

  test('a truncated tar, or bytes that are no tar at all, are DataLoss and leave nothing', async () => {
    const tar = await tarOf(RICH);
    for (const bad of [tar.subarray(0, 10_000), randomBytes(5000)]) {
      const dir = fresh();
      await assert.rejects(unpackLayer(Readable.from([bad]), dir, { what: 'layer L' }), broken(/tar archive/));
      await assertNothingLeft(dir);
    }
  });

  test('a failure to read the blob is not blamed on its content', async () => {
    const dir = fresh();
    const tar = await tarOf(RICH);
    async function* failing(): AsyncGenerator<Uint8Array> {
      yield tar.subarray(0, 2048);
      throw Object.assign(new Error('EIO: i/o error, read'), { code: 'EIO' });
    }
    await assert.rejects(unpackLayer(failing(), dir), (err: unknown) => err instanceof EffectFailed && /EIO/.test(err.message));
    await assertNothingLeft(dir);
  });

  test('onBytes sees every uncompressed byte and can stop the unpack', async () => {
    const tar = await tarOf(RICH);
    let seen = 0;
    const result = await unpackLayer(pieces(gzipSync(tar)), fresh(), { onBytes: (n) => (seen += n) });
    assert.equal(seen, tar.length);
    assert.equal(result.size, tar.length);
    const dir = fresh();
    let budget = 100_000;
    const onBytes = (n: number): void => {
      budget -= n;
      if (budget < 0) throw new ResourceExhausted('over budget');
    };
    await assert.rejects(unpackLayer(pieces(zstdOf(tar)), dir, { onBytes }), ResourceExhausted);
    await assertNothingLeft(dir);
  });

  test('an existing layer dir is not overwritten', async () => {
    const dir = fresh();
    await mkdir(dir);
    await assert.rejects(unpackLayer(Readable.from([await tarOf([{ name: 'x', body: 'x' }])]), dir), AlreadyExists);
    assert.deepEqual(await readdir(dir), []);
  });
});
