/**
 * resolveUser against real temp rootfs dirs: precedence of run_as_user / run_as_username / image
 * User, group forms, supplementary groups, missing files, and symlinks that try to leave the rootfs.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { InvalidArgument } from '../errors/catalogue.js';
import { readFileInRoot, resolveUser, userOptions, type UserOptions } from './resolve-user.js';
import type { ContainerConfig, LinuxContainerSecurityContext } from './cri-container-types.js';

const PASSWD = [
  'root:x:0:0:root:/root:/bin/sh',
  '# a comment',
  'app:x:1000:1000:app:/home/app:/bin/sh',
  'web:x:1001:2000::/srv/web:/bin/false',
  'broken line',
  'nobody:x:65534:65534:nobody:/nonexistent:/bin/false',
].join('\n');
const GROUP = [
  'root:x:0:',
  'app:x:1000:',
  'www:x:2000:',
  'audio:x:29:app,web',
  'video:x:44:app',
  'staff:x:50:web',
].join('\n');

const opts = (o: Partial<UserOptions>): UserOptions => ({
  imageUser: '',
  runAsUser: null,
  runAsGroup: null,
  runAsUsername: '',
  supplementalGroups: [],
  ...o,
});

let dir: string;
let rootfs: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'podchart-user-'));
  rootfs = join(dir, 'rootfs');
  await mkdir(join(rootfs, 'etc'), { recursive: true });
  await writeFile(join(rootfs, 'etc/passwd'), PASSWD);
  await writeFile(join(rootfs, 'etc/group'), GROUP);
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('resolveUser precedence and forms', () => {
  const cases: { name: string; o: Partial<UserOptions>; want: { uid: number; gid: number; additionalGids: number[]; username: string | null; home: string } }[] = [
    { name: 'no user at all is root', o: {}, want: { uid: 0, gid: 0, additionalGids: [], username: 'root', home: '/root' } },
    { name: 'image user by name', o: { imageUser: 'app' }, want: { uid: 1000, gid: 1000, additionalGids: [29, 44], username: 'app', home: '/home/app' } },
    { name: 'image user by uid in passwd', o: { imageUser: '1001' }, want: { uid: 1001, gid: 2000, additionalGids: [29, 50], username: 'web', home: '/srv/web' } },
    { name: 'image uid not in passwd: gid 0, home /', o: { imageUser: '4242' }, want: { uid: 4242, gid: 0, additionalGids: [], username: null, home: '/' } },
    { name: 'image uid:gid', o: { imageUser: '4242:77' }, want: { uid: 4242, gid: 77, additionalGids: [], username: null, home: '/' } },
    { name: 'image name:group', o: { imageUser: 'app:www' }, want: { uid: 1000, gid: 2000, additionalGids: [29, 44], username: 'app', home: '/home/app' } },
    { name: 'image name:gid', o: { imageUser: 'web:29' }, want: { uid: 1001, gid: 29, additionalGids: [50], username: 'web', home: '/srv/web' } },
    { name: 'run_as_username wins over the image', o: { imageUser: 'app', runAsUsername: 'web' }, want: { uid: 1001, gid: 2000, additionalGids: [29, 50], username: 'web', home: '/srv/web' } },
    { name: 'run_as_user wins over run_as_username', o: { runAsUser: 1000, runAsUsername: 'web' }, want: { uid: 1000, gid: 1000, additionalGids: [29, 44], username: 'app', home: '/home/app' } },
    { name: 'run_as_user ignores the image group', o: { imageUser: '1:2', runAsUser: 4242 }, want: { uid: 4242, gid: 0, additionalGids: [], username: null, home: '/' } },
    { name: 'run_as_group wins over the passwd group', o: { runAsUser: 1000, runAsGroup: 5 }, want: { uid: 1000, gid: 5, additionalGids: [29, 44], username: 'app', home: '/home/app' } },
    { name: 'run_as_group wins over the image group', o: { imageUser: 'app:www', runAsGroup: 6 }, want: { uid: 1000, gid: 6, additionalGids: [29, 44], username: 'app', home: '/home/app' } },
    {
      name: 'supplemental groups merged, deduped, primary excluded',
      o: { runAsUser: 1000, supplementalGroups: [44, 1000, 3000, 3000] },
      want: { uid: 1000, gid: 1000, additionalGids: [29, 44, 3000], username: 'app', home: '/home/app' },
    },
    {
      name: 'Strict: only the requested groups',
      o: { imageUser: 'app', supplementalGroups: [3000], supplementalGroupsPolicy: 'Strict' },
      want: { uid: 1000, gid: 1000, additionalGids: [3000], username: 'app', home: '/home/app' },
    },
  ];
  for (const c of cases) {
    test(c.name, async () => {
      assert.deepEqual(await resolveUser(rootfs, opts(c.o)), c.want);
    });
  }

  test('an unknown user name is InvalidArgument naming it', async () => {
    await assert.rejects(resolveUser(rootfs, opts({ imageUser: 'ghost' })), (err: Error) => {
      assert.ok(err instanceof InvalidArgument);
      assert.equal(err.message, 'user "ghost" not found in the image\'s /etc/passwd');
      return true;
    });
    await assert.rejects(resolveUser(rootfs, opts({ runAsUsername: 'ghost' })), /user "ghost" not found/);
  });

  test('an unknown group name is InvalidArgument naming it', async () => {
    await assert.rejects(resolveUser(rootfs, opts({ imageUser: 'app:ghosts' })), /group "ghosts" not found in the image's \/etc\/group/);
  });

  test('out-of-range ids are refused', async () => {
    await assert.rejects(resolveUser(rootfs, opts({ runAsUser: -1 })), /run_as_user must be an id/);
    await assert.rejects(resolveUser(rootfs, opts({ runAsUser: 1000, runAsGroup: 2 ** 32 })), /run_as_group must be an id/);
  });
});

describe('files of the image', () => {
  test('no /etc/passwd: numeric users work, names do not', async () => {
    const empty = await mkdtemp(join(dir, 'empty-'));
    assert.deepEqual(await resolveUser(empty, opts({ imageUser: '1000:1000' })), { uid: 1000, gid: 1000, additionalGids: [], username: null, home: '/' });
    await assert.rejects(resolveUser(empty, opts({ imageUser: 'app' })), /user "app" not found/);
  });

  test('an absolute symlink naming a host file resolves inside the rootfs, not on the host', async () => {
    const r = await mkdtemp(join(dir, 'abs-'));
    const secret = join(dir, 'host-passwd');
    await writeFile(secret, 'hostonly:x:5:5::/h:/bin/sh\n');
    await mkdir(join(r, 'etc'), { recursive: true });
    await symlink(secret, join(r, 'etc/passwd'));
    // Inside the rootfs that absolute path does not exist: no passwd, so the host-only user is unknown.
    await assert.rejects(resolveUser(r, opts({ imageUser: 'hostonly' })), /user "hostonly" not found/);
    await mkdir(join(r, dir), { recursive: true });
    await writeFile(join(r, secret), 'inside:x:7:7::/in:/bin/sh\n');
    assert.equal((await resolveUser(r, opts({ imageUser: 'inside' }))).uid, 7);
  });

  test('".." in a symlink stops at the rootfs root', async () => {
    const r = await mkdtemp(join(dir, 'dotdot-'));
    await mkdir(join(r, 'etc'), { recursive: true });
    await writeFile(join(r, 'passwd'), 'top:x:9:9::/:/bin/sh\n');
    // ../../../../passwd from /etc climbs past the root: clamped, it is <rootfs>/passwd.
    await symlink('../../../../../../passwd', join(r, 'etc/passwd'));
    assert.equal((await resolveUser(r, opts({ imageUser: 'top' }))).uid, 9);
  });

  test('a symlinked /etc directory is followed inside the rootfs', async () => {
    const r = await mkdtemp(join(dir, 'etcdir-'));
    await mkdir(join(r, 'real/etc'), { recursive: true });
    await writeFile(join(r, 'real/etc/passwd'), 'linked:x:11:12::/l:/bin/sh\n');
    await symlink('/real/etc', join(r, 'etc'));
    assert.deepEqual(await resolveUser(r, opts({ imageUser: 'linked' })), { uid: 11, gid: 12, additionalGids: [], username: 'linked', home: '/l' });
  });

  test('symlink loops are refused', async () => {
    const r = await mkdtemp(join(dir, 'loop-'));
    await mkdir(join(r, 'etc'), { recursive: true });
    await symlink('/etc/passwd', join(r, 'etc/passwd'));
    await assert.rejects(readFileInRoot(r, '/etc/passwd'), /too many symlinks/);
  });

  test('a directory or FIFO at /etc/passwd counts as absent', async () => {
    const r = await mkdtemp(join(dir, 'odd-'));
    await mkdir(join(r, 'etc/passwd'), { recursive: true });
    assert.equal(await readFileInRoot(r, '/etc/passwd'), null);
  });
});

describe('userOptions', () => {
  const sc = (o: Partial<LinuxContainerSecurityContext>): ContainerConfig =>
    ({ linux: { resources: null, securityContext: { runAsUser: null, runAsGroup: null, runAsUsername: '', supplementalGroups: [], supplementalGroupsPolicy: 'Merge', ...o } } }) as unknown as ContainerConfig;
  const image = { architecture: 'amd64', os: 'linux', config: { User: 'app:www' }, rootfs: { type: 'layers' as const, diff_ids: [] } };

  test('maps CRI int64 strings and the image user', () => {
    assert.deepEqual(userOptions(sc({ runAsUser: { value: '1000' }, runAsGroup: { value: '3' }, supplementalGroups: ['4', '5'] }), image), {
      imageUser: 'app:www',
      runAsUser: 1000,
      runAsGroup: 3,
      runAsUsername: '',
      supplementalGroups: [4, 5],
      supplementalGroupsPolicy: 'Merge',
    });
  });

  test('refuses negative ids, naming the field', () => {
    assert.throws(() => userOptions(sc({ runAsUser: { value: '-1' } }), image), /run_as_user must be a non-negative id/);
    assert.throws(() => userOptions(sc({ supplementalGroups: ['1', 'x'] }), image), /supplemental_groups\[1\]/);
  });
});
