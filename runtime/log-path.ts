/**
 * A container's log file, kept beneath its pod's log_directory (issue 11, item 5). kubelet names
 * the file relative to the directory; a symbolic link (or a non-directory) below the directory
 * must not carry it elsewhere: `sub -> /etc` with log_path `sub/x.log`, or a dangling `x.log ->
 * /etc/newfile`, would otherwise make the daemon's mkdir and conmon's open create files in /etc.
 *
 * The log_directory itself is taken as kubelet gives it: it may sit behind a symbolic link
 * (/var/log on another disk). Its real path is resolved once, at CreateContainer, and kept with the
 * container (`LogFile.root`); everything below it is checked here, component by component.
 *
 * Node has no openat2(RESOLVE_BENEATH), so the daemon walks with directory fds instead: each
 * component is opened as `/proc/self/fd/<parent fd>/<name>` with O_DIRECTORY|O_NOFOLLOW (the magic
 * link resolves to the open directory, O_NOFOLLOW refuses a link in the last component), missing
 * directories are made the same way, and the file is created O_CREAT|O_EXCL|O_NOFOLLOW. The
 * daemon's own part is therefore not redirectable once a component is open.
 *
 * conmon is the part that cannot be held that way. It takes the log as a path (`--log-path
 * k8s-file:<path>`), no fd, and opens it with open(O_WRONLY|O_APPEND|O_CREAT), following links;
 * on a reopen it opens `<path>.tmp` with O_WRONLY|O_TRUNC|O_CREAT (again following links) and
 * renames it over `<path>` (conmon 2.1.6, src/ctr_logging.c reopen_k8s_file). A
 * `/proc/<daemon pid>/fd/<dir fd>/…` path would resolve for conmon only while this daemon lives
 * and holds the fd, but conmon outlives the daemon and reopens the same string on every
 * ReopenContainerLog, so it is not a path to hand it. It gets `root/relative` instead: no
 * symbolic link anywhere (root is a real path, the rest is checked), re-checked before conmon
 * starts and before each reopen (both the file and `<path>.tmp`, which a link would turn into a
 * truncate-and-write of its target). What remains is a race: a component swapped between the
 * check and conmon's open. Closing it needs conmon to take an fd.
 */
import { constants } from 'node:fs';
import { lstat, mkdir, open, realpath, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join, relative } from 'node:path';
import { Code, PodchartError, type CodeNumber } from '../errors/catalogue.js';

/** Where conmon writes a container's log: `root` is a real directory, `relative` is below it. */
export interface LogFile {
  /** The real path of the pod's log_directory, resolved at CreateContainer. */
  root: string;
  /** The CRI log_path, normalized: no "..", no leading "/", no symbolic link below root. */
  relative: string;
}

/**
 * A log path that would leave its log directory. INVALID_ARGUMENT when CreateContainer asks for
 * one; FAILED_PRECONDITION when a path that was fine has since been changed under a running
 * container (ReopenContainerLog: the request is valid, the directory is not).
 */
export class UnsafeLogPath extends PodchartError {
  constructor(message: string, code: CodeNumber = Code.INVALID_ARGUMENT) {
    super(code, message);
  }
}

/** The path handed to conmon. */
export const logFilePath = (file: LogFile): string => join(file.root, file.relative);

const DIR_FLAGS = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW | constants.O_NONBLOCK;
const CREATE_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW | constants.O_NONBLOCK;
/** conmon's own mode for the files it creates (the log and its reopen .tmp). */
const LOG_FILE_MODE = 0o600;

const errnoOf = (err: unknown): string | undefined => (err as NodeJS.ErrnoException | null)?.code;

/**
 * The real path of a log_directory. One that does not exist yet resolves through its nearest
 * existing ancestor (kubelet creates it before RunPodSandbox, but the daemon has always created a
 * missing one, as CRI-O does).
 */
export async function realLogDirectory(dir: string): Promise<string> {
  try {
    return await realpath(dir);
  } catch (err) {
    if (errnoOf(err) === 'ENOENT' && dirname(dir) !== dir) return join(await realLogDirectory(dirname(dir)), basename(dir));
    throw new UnsafeLogPath(`PodSandboxConfig.log_directory "${dir}" cannot be resolved: ${(err as Error).message}`);
  }
}

/**
 * What the walk does: `check` only looks (nothing is made: the CRI handler, before any actor
 * exists); `create` makes missing directories and the file (the create and start effects);
 * `reopen` makes missing directories and leaves the file to conmon, checking its `.tmp` too.
 */
type Walk = 'check' | 'create' | 'reopen';

/**
 * Refuses a log file that would leave `file.root`, making what is missing when asked. Every
 * refusal names the component and what it is.
 */
export async function secureLogFile(file: LogFile, walk: Walk): Promise<void> {
  const code = walk === 'reopen' ? Code.FAILED_PRECONDITION : Code.INVALID_ARGUMENT;
  const refuse = (component: string, what: string): UnsafeLogPath =>
    new UnsafeLogPath(
      `log_path "${file.relative}": "${component}" ${what} beneath the pod's log_directory ${file.root}; a container log must stay inside it (links below it are not followed)`,
      code,
    );
  const parts = file.relative.split('/');
  const name = parts.pop() ?? '';
  if (walk !== 'check') await mkdir(file.root, { recursive: true });
  let dir: FileHandle;
  try {
    dir = await open(file.root, constants.O_RDONLY | constants.O_DIRECTORY);
  } catch (err) {
    // Not there yet (check only) means nothing below it exists: the rest will be made beneath it.
    if (walk === 'check' && errnoOf(err) === 'ENOENT') return;
    throw new UnsafeLogPath(`the pod's log_directory ${file.root} cannot be opened: ${(err as Error).message}`, code);
  }
  try {
    for (const [i, part] of parts.entries()) {
      const component = parts.slice(0, i + 1).join('/');
      const at = `/proc/self/fd/${dir.fd}/${part}`;
      let next = await openDirectory(at, component, refuse);
      if (!next) {
        if (walk === 'check') return;
        // mkdir does not follow a link in its last component: one planted meanwhile is EEXIST,
        // and the open below refuses it.
        await mkdir(at).catch((err: unknown) => {
          if (errnoOf(err) !== 'EEXIST') throw err;
        });
        next = await openDirectory(at, component, refuse);
        if (!next) throw refuse(component, 'vanished while it was being made');
      }
      await dir.close();
      dir = next;
    }
    const at = `/proc/self/fd/${dir.fd}/${name}`;
    if (walk === 'create') {
      const created = await open(at, CREATE_FLAGS, LOG_FILE_MODE).catch((err: unknown) => {
        if (errnoOf(err) !== 'EEXIST') throw err;
        return null;
      });
      if (created) {
        await created.close();
        return;
      }
    }
    // An existing log is appended to (a restarted start, or kubelet's own file): it must be a
    // regular file, and not a link to one.
    await requireRegularOrAbsent(at, file.relative, refuse);
    if (walk === 'reopen') await requireRegularOrAbsent(`${at}.tmp`, `${file.relative}.tmp`, refuse);
  } finally {
    await dir.close();
  }
}

async function openDirectory(at: string, component: string, refuse: (c: string, what: string) => UnsafeLogPath): Promise<FileHandle | null> {
  try {
    return await open(at, DIR_FLAGS);
  } catch (err) {
    const errno = errnoOf(err);
    if (errno === 'ENOENT') return null;
    // O_NOFOLLOW|O_DIRECTORY on a link gives ENOTDIR (or ELOOP): lstat tells which it is.
    if (errno !== 'ENOTDIR' && errno !== 'ELOOP') throw err;
    const link = await lstat(at).then((st) => st.isSymbolicLink(), () => errno === 'ELOOP');
    throw refuse(component, link ? 'is a symbolic link' : 'is not a directory');
  }
}

async function requireRegularOrAbsent(at: string, shown: string, refuse: (c: string, what: string) => UnsafeLogPath): Promise<void> {
  const st = await lstat(at).catch((err: unknown) => {
    if (errnoOf(err) === 'ENOENT') return null;
    throw err;
  });
  if (!st || st.isFile()) return;
  throw refuse(shown, st.isSymbolicLink() ? 'is a symbolic link' : 'is not a regular file');
}

/**
 * A container's log file, from its record. A record from before `logFile` was kept has only the
 * joined path, which is what conmon was given then: split it at the pod's log_directory.
 */
export function logFileOf(spec: { logPath: string; logFile?: LogFile }, logDirectory: string | undefined): LogFile | null {
  if (spec.logFile) return spec.logFile;
  if (!spec.logPath) return null;
  const root = logDirectory && spec.logPath.startsWith(`${logDirectory}/`) ? logDirectory : dirname(spec.logPath);
  return { root, relative: relative(root, spec.logPath) };
}
