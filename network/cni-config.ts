/**
 * The CNI network configuration: which network pods join, read from a conf dir as libcni reads it
 * (containerd `internal/cri/server/service.go` + go-cni, CRI-O `ocicni`): `.conf`, `.conflist` and
 * `.json` files in lexical order, the first valid one wins. Read afresh on every call, so a config
 * dropped in (or fixed) later is picked up without a restart; a Status or a pod creation costs one
 * readdir and a few small reads.
 */
import { constants } from 'node:fs';
import { access, readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';

/** One plugin of a list, as written in the file; `name`/`cniVersion` come from the list at invocation. */
export interface PluginConfig {
  type: string;
  /** Runtime-supplied data the plugin accepts (`portMappings`, `dns`, `bandwidth`, `ipRanges`, …). */
  capabilities?: Record<string, boolean>;
  [key: string]: unknown;
}

export interface NetworkConfigList {
  cniVersion: string;
  name: string;
  /** CNI 1.0 `disableCheck`: the network does not support CHECK. */
  disableCheck?: boolean;
  plugins: PluginConfig[];
}

export interface LoadedNetworkConfig {
  config: NetworkConfigList | null;
  /** The file the config came from. */
  file: string | null;
  /** Why each skipped file was skipped: "<file name>: <reason>". */
  problems: string[];
  /** The dir that was read, for messages. */
  confDir: string;
}

export interface NetworkReadiness {
  ready: boolean;
  reason: 'NetworkPluginNotReady' | '';
  message: string;
}

const EXTENSIONS = ['.conf', '.conflist', '.json'];

/**
 * Versions whose results podchart reads (interfaces/ips/routes/dns). 0.1.0 and 0.2.0 results have
 * another shape (ip4/ip6); no plugin in use today needs them.
 */
export const SUPPORTED_CNI_VERSIONS = ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'];

/** The first executable named `type` in the bin dirs, or null. */
export async function findPlugin(type: string, binDirs: readonly string[]): Promise<string | null> {
  if (!isPluginName(type)) return null;
  for (const dir of binDirs) {
    const path = join(dir, type);
    try {
      const s = await stat(path);
      if (!s.isFile()) continue;
      await access(path, constants.X_OK);
      return path;
    } catch {
      // absent or not executable here: the next dir may have it
    }
  }
  return null;
}

/** A plugin type is a file name, never a path (a config must not run arbitrary binaries). */
function isPluginName(type: string): boolean {
  return type !== '' && type !== '.' && type !== '..' && !type.includes('/') && !type.includes('\0');
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Parses and shapes one file; returns a reason string when it cannot be a network config. */
function parseConfig(fileName: string, text: string): NetworkConfigList | string {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    return `not valid JSON: ${(err as Error).message}`;
  }
  if (!isObject(raw)) return 'not a JSON object';
  const isList = fileName.endsWith('.conflist') || (fileName.endsWith('.json') && 'plugins' in raw);
  const name = raw.name;
  const cniVersion = raw.cniVersion;
  if (typeof name !== 'string' || name === '') return 'no "name"';
  if (typeof cniVersion !== 'string' || cniVersion === '') return 'no "cniVersion"';
  if (!SUPPORTED_CNI_VERSIONS.includes(cniVersion)) {
    return `cniVersion "${cniVersion}" not supported (supported: ${SUPPORTED_CNI_VERSIONS.join(', ')})`;
  }
  let plugins: unknown[];
  if (isList) {
    if (!Array.isArray(raw.plugins)) return 'no "plugins" list';
    if (raw.plugins.length === 0) return '"plugins" is empty';
    plugins = raw.plugins;
  } else {
    // A single-plugin .conf is a list of one, as libcni's ConfListFromConf makes it.
    if ('plugins' in raw) return 'has "plugins": a list must be named *.conflist';
    plugins = [raw];
  }
  const shaped: PluginConfig[] = [];
  for (const [i, p] of plugins.entries()) {
    if (!isObject(p)) return `plugin ${i} is not a JSON object`;
    if (typeof p.type !== 'string' || !isPluginName(p.type)) return `plugin ${i} has no valid "type"`;
    if (p.capabilities !== undefined && !isObject(p.capabilities)) return `plugin "${p.type}": "capabilities" is not an object`;
    shaped.push(p as PluginConfig);
  }
  const list: NetworkConfigList = { cniVersion, name, plugins: shaped };
  if (raw.disableCheck === true) list.disableCheck = true;
  return list;
}

/**
 * Reads the conf dir: the first valid config in lexical order, and why each file before it was
 * skipped. Valid means: JSON with a name, a supported cniVersion, and every plugin type found as an
 * executable in a bin dir. A missing conf dir is no config, not an error.
 */
export async function loadNetworkConfig(confDir: string, binDirs: string[]): Promise<LoadedNetworkConfig> {
  const problems: string[] = [];
  let names: string[];
  try {
    names = await readdir(confDir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT') problems.push(`${confDir}: cannot read: ${(err as Error).message}`);
    return { config: null, file: null, problems, confDir };
  }
  // Byte order, as Go's sort.Strings in libcni.ConfFiles.
  const candidates = names.filter((n) => EXTENSIONS.some((e) => n.endsWith(e))).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  for (const fileName of candidates) {
    const file = join(confDir, fileName);
    let text: string;
    try {
      if (!(await stat(file)).isFile()) continue;
      text = await readFile(file, 'utf8');
    } catch (err) {
      problems.push(`${fileName}: cannot read: ${(err as Error).message}`);
      continue;
    }
    const parsed = parseConfig(fileName, text);
    if (typeof parsed === 'string') {
      problems.push(`${fileName}: ${parsed}`);
      continue;
    }
    const missing: string[] = [];
    for (const p of parsed.plugins) {
      if ((await findPlugin(p.type, binDirs)) === null && !missing.includes(p.type)) missing.push(p.type);
    }
    if (missing.length > 0) {
      const what = missing.map((m) => `"${m}"`).join(', ');
      problems.push(`${fileName}: plugin${missing.length > 1 ? 's' : ''} ${what} not found in ${binDirs.join(', ')}`);
      continue;
    }
    return { config: parsed, file, problems, confDir };
  }
  return { config: null, file: null, problems, confDir };
}

/** The CRI NetworkReady condition for a loaded config (Status, seed 003: network before pods). */
export function networkReady(loaded: LoadedNetworkConfig): NetworkReadiness {
  if (loaded.config) return { ready: true, reason: '', message: '' };
  const message =
    loaded.problems.length === 0
      ? `no CNI config in ${loaded.confDir}`
      : `no valid CNI config in ${loaded.confDir}: ${loaded.problems.join('; ')}`;
  return { ready: false, reason: 'NetworkPluginNotReady', message };
}
