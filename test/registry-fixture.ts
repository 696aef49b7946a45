/**
 * A real registry for tests: /usr/bin/docker-registry (distribution 2.8) on a free loopback port with
 * its storage in a temp dir, anonymous, behind htpasswd, or behind a token server that this process
 * serves (a small node:http realm that signs RS256 JWTs the registry verifies through the x5c chain),
 * on 127.0.0.1 or on another loopback address, over http or https.
 * Below it, named fakes for faults a real registry does not produce: a hung server, a tampering proxy.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, sign, X509Certificate, createPrivateKey } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type RequestListener, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { untilEvent } from './until-event.js';
import { run } from '../host/exec.js';

export interface RegistryUser {
  user: string;
  password: string;
  /** Accepted by the token server as an OAuth2 refresh token for this user (token mode). */
  refreshToken?: string;
}

export interface RegistryFixture {
  /** http://127.0.0.1:<port> */
  url: string;
  /** 127.0.0.1:<port> */
  host: string;
  stop(): Promise<void>;
  /** How many times the token endpoint was asked (token mode). */
  readonly tokenRequests: number;
  /** How many of those carried credentials: Basic, a password or a refresh token (token mode). */
  readonly tokenRequestsWithCredentials: number;
  /** The token endpoint (token mode), e.g. to mint a registryToken in a test. */
  readonly tokenRealm: string | null;
  /** The CA certificate (PEM file) of an https token realm, for NODE_EXTRA_CA_CERTS; else null. */
  readonly tokenRealmCa: string | null;
  /** Everything docker-registry logged: it names the user of each authenticated or refused request. */
  log(): string;
}

export interface RegistryOptions {
  auth?: 'htpasswd' | 'token';
  users?: RegistryUser[];
  /** Token mode: where the realm listens (default 127.0.0.1, the registry's own address) and whether over https. */
  realm?: { address?: string; tls?: boolean };
}

const REGISTRY_BIN = '/usr/bin/docker-registry';
const SERVICE = 'test-registry';
const ISSUER = 'podchart-test';
const START_DEADLINE_MS = 15_000;

/** A port nobody is using right now (bind to 0, read it, release it). */
export async function freePort(): Promise<number> {
  const server = createNetServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export async function startRegistry(opts: RegistryOptions = {}): Promise<RegistryFixture> {
  const dir = await mkdtemp(join(tmpdir(), 'podchart-registry-'));
  const users = opts.users ?? [];
  let tokenServer: Server | null = null;
  let child: ChildProcess | null = null;
  const counters = { tokenRequests: 0, tokenRequestsWithCredentials: 0 };
  let realm: string | null = null;
  let realmCa: string | null = null;
  try {
    const config: Record<string, unknown> = {
      version: 0.1,
      log: { level: 'info', accesslog: { disabled: true } }, // info: it says when it listens
      storage: { filesystem: { rootdirectory: join(dir, 'data') }, delete: { enabled: true }, maintenance: { uploadpurging: { enabled: false } } },
      http: { addr: '', secret: randomBytes(16).toString('hex') },
    };
    if (opts.auth === 'htpasswd') {
      const lines: string[] = [];
      for (const u of users) lines.push((await run('htpasswd', ['-Bbn', u.user, u.password])).stdout.trim());
      await writeFile(join(dir, 'htpasswd'), lines.join('\n') + '\n');
      config.auth = { htpasswd: { realm: 'podchart-test-realm', path: join(dir, 'htpasswd') } };
    } else if (opts.auth === 'token') {
      const signer = await makeSigner(dir);
      const address = opts.realm?.address ?? '127.0.0.1';
      const listener: RequestListener = (req, res) => {
        counters.tokenRequests += 1;
        serveToken(req, res, users, signer, () => (counters.tokenRequestsWithCredentials += 1)).catch((err: unknown) => {
          res.writeHead(500).end(String(err));
        });
      };
      if (opts.realm?.tls) {
        const tls = await makeServerCertificate(dir, address);
        realmCa = tls.certPath;
        tokenServer = createHttpsServer({ key: tls.key, cert: tls.cert }, listener);
      } else {
        tokenServer = createServer(listener);
      }
      await new Promise<void>((resolve) => tokenServer?.listen(0, address, resolve));
      realm = `${opts.realm?.tls ? 'https' : 'http'}://${address}:${(tokenServer.address() as AddressInfo).port}/token`;
      config.auth = { token: { realm, service: SERVICE, issuer: ISSUER, rootcertbundle: signer.certPath } };
    }

    const port = await freePort();
    const host = `127.0.0.1:${port}`;
    (config.http as { addr: string }).addr = host;
    // JSON is YAML, so the config needs no YAML writer.
    const configPath = join(dir, 'config.yml');
    await writeFile(configPath, JSON.stringify(config, null, 2));

    const proc = spawn(REGISTRY_BIN, ['serve', configPath], { stdio: ['ignore', 'ignore', 'pipe'] });
    child = proc;
    let stderr = '';
    let log = '';
    proc.stderr?.on('data', (d: Buffer) => {
      log += d.toString();
      stderr = (stderr + d.toString()).slice(-4000);
    });
    const exited = new Promise<string>((resolve) => proc.once('exit', (code, signal) => resolve(`exited (${code ?? signal})`)));
    const spawnFailed = new Promise<string>((resolve) => proc.once('error', (err) => resolve(`failed to start: ${err.message}`)));
    await untilListening(proc, host, Promise.race([exited, spawnFailed]), () => stderr);

    const url = `http://${host}`;
    const server = tokenServer;
    return {
      url,
      host,
      get tokenRequests() {
        return counters.tokenRequests;
      },
      get tokenRequestsWithCredentials() {
        return counters.tokenRequestsWithCredentials;
      },
      tokenRealm: realm,
      tokenRealmCa: realmCa,
      log: () => log,
      stop: async () => {
        await stopProcess(proc);
        if (server) await closeServer(server);
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    if (child) await stopProcess(child);
    if (tokenServer) await closeServer(tokenServer);
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

/** Resolves when docker-registry logs that it listens on `host`; fails if it dies first. */
function untilListening(proc: ChildProcess, host: string, died: Promise<string>, stderr: () => string): Promise<void> {
  return untilEvent<void>(`docker-registry to listen on ${host}`, START_DEADLINE_MS, (done, fail) => {
    const onData = (): void => {
      if (stderr().includes(`listening on ${host}`)) done();
    };
    proc.stderr?.on('data', onData);
    void died.then((why) => fail(new Error(`docker-registry ${why}: ${stderr()}`)));
    onData();
    return () => proc.stderr?.off('data', onData);
  });
}

async function stopProcess(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  proc.kill('SIGTERM');
  // Escalate if SIGTERM is not enough: a deadline event, not a sleep.
  const deadline = AbortSignal.timeout(5000);
  const escalate = (): boolean => proc.kill('SIGKILL');
  deadline.addEventListener('abort', escalate, { once: true });
  await exited;
  deadline.removeEventListener('abort', escalate);
}

async function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

// --- the token realm ---

interface Signer {
  certPath: string;
  /** base64 DER of the certificate, for the JWT's x5c header. */
  x5c: string;
  key: ReturnType<typeof createPrivateKey>;
}

async function makeSigner(dir: string): Promise<Signer> {
  const keyPath = join(dir, 'token.key');
  const certPath = join(dir, 'token.pem');
  await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyPath, '-out', certPath, '-days', '2', '-subj', '/CN=podchart-test-token-issuer']);
  const cert = new X509Certificate(await readFile(certPath));
  return { certPath, x5c: cert.raw.toString('base64'), key: createPrivateKey(await readFile(keyPath)) };
}

/** A self-signed certificate for `address` (an IP SAN), its own CA: what NODE_EXTRA_CA_CERTS then trusts. */
async function makeServerCertificate(dir: string, address: string): Promise<{ certPath: string; cert: Buffer; key: Buffer }> {
  const keyPath = join(dir, 'realm.key');
  const certPath = join(dir, 'realm.pem');
  await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyPath, '-out', certPath, '-days', '2', '-subj', `/CN=${address}`, '-addext', `subjectAltName=IP:${address}`]);
  return { certPath, cert: await readFile(certPath), key: await readFile(keyPath) };
}

const b64url = (data: Buffer | string): string => Buffer.from(data).toString('base64url');

/**
 * GET ?service&scope (Basic credentials, or none for an anonymous token with no access) and the
 * OAuth2 POST form (grant_type=password or refresh_token), as docs/spec/auth/{token,oauth}.md.
 */
async function serveToken(req: IncomingMessage, res: ServerResponse, users: RegistryUser[], signer: Signer, withCredentials: () => void): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://token');
  let scopes = url.searchParams.getAll('scope');
  let service = url.searchParams.get('service');
  let user: RegistryUser | null | undefined = null;
  let oauth = false;
  if (req.method === 'POST') {
    oauth = true;
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const form = new URLSearchParams(Buffer.concat(chunks).toString());
    if (form.has('refresh_token') || form.has('password')) withCredentials();
    scopes = (form.get('scope') ?? '').split(' ').filter(Boolean);
    service = form.get('service');
    const grant = form.get('grant_type');
    if (grant === 'refresh_token') user = users.find((u) => u.refreshToken !== undefined && u.refreshToken === form.get('refresh_token'));
    else if (grant === 'password') user = users.find((u) => u.user === form.get('username') && u.password === form.get('password'));
    if (!user) return deny(res, 'invalid refresh token or password');
  } else {
    const header = req.headers.authorization;
    if (header !== undefined) {
      withCredentials();
      const [name, ...rest] = Buffer.from(header.replace(/^Basic /i, ''), 'base64').toString().split(':');
      user = users.find((u) => u.user === name && u.password === rest.join(':'));
      if (!user) return deny(res, 'incorrect username or password');
    }
  }
  if (service !== SERVICE) return deny(res, `unknown service ${service ?? '(none)'}`, 400);

  const now = Math.floor(Date.now() / 1000);
  // An anonymous caller gets a token with no access, as Docker Hub's realm does for private repos.
  const access = user ? scopes.flatMap(parseScope) : [];
  const header = { typ: 'JWT', alg: 'RS256', x5c: [signer.x5c] };
  const claims = { iss: ISSUER, sub: user?.user ?? '', aud: SERVICE, exp: now + 300, nbf: now - 10, iat: now, jti: randomBytes(8).toString('hex'), access };
  const signingInput = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
  const token = `${signingInput}.${b64url(sign('sha256', Buffer.from(signingInput), signer.key))}`;
  const body = oauth ? { access_token: token, expires_in: 300, scope: scopes.join(' ') } : { token, access_token: token, expires_in: 300, issued_at: new Date(now * 1000).toISOString() };
  res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify(body));
}

function parseScope(scope: string): { type: string; name: string; actions: string[] }[] {
  // "repository:a/b:pull,push" — the name may contain ':' only as host:port, so split from both ends.
  const first = scope.indexOf(':');
  const last = scope.lastIndexOf(':');
  if (first === -1 || last === first) return [];
  return [{ type: scope.slice(0, first), name: scope.slice(first + 1, last), actions: scope.slice(last + 1).split(',').filter(Boolean) }];
}

function deny(res: ServerResponse, details: string, status = 401): void {
  res.writeHead(status, { 'Content-Type': 'application/json' }).end(JSON.stringify({ details }));
}

// --- named fakes, for faults a real registry does not produce ---

/** FAKE: a server that accepts connections and never answers, to exercise the request bound. */
export async function startHungServer(): Promise<{ host: string; stop(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createNetServer((s) => {
    sockets.add(s);
    s.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    host: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    stop: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * flip-blob-byte: blob bodies with their last byte inverted · pad-manifest: manifests with a newline
 * appended and no Docker-Content-Digest · wrong-digest-header: a Docker-Content-Digest of zeros ·
 * redirect-blobs: 307 to the real registry · schema1: every manifest is a schema 1 one ·
 * stall-blobs: blob headers and one byte, then silence · trickle-blobs: each blob whole, but 32 KiB
 * every 100 ms (a slow registry) · huge-manifest: manifests padded with 5 MiB of
 * spaces (still JSON; docker-registry itself refuses to store one over 4 MiB).
 */
export type Tamper = 'flip-blob-byte' | 'pad-manifest' | 'wrong-digest-header' | 'redirect-blobs' | 'schema1' | 'stall-blobs' | 'trickle-blobs' | 'huge-manifest';

/** FAKE: a proxy in front of a real registry that corrupts or reshapes its answers in one way. */
export async function startTamperingProxy(target: string, tamper: Tamper): Promise<{ url: string; host: string; redirects: number; stop(): Promise<void> }> {
  const state = { redirects: 0 };
  const server: Server = createServer((req, res) => {
    void (async () => {
      const path = req.url ?? '/';
      const isBlob = /\/blobs\/sha256:/.test(path);
      const isManifest = path.includes('/manifests/');
      if (tamper === 'redirect-blobs' && isBlob) {
        state.redirects += 1;
        res.writeHead(307, { Location: `${target}${path}` }).end();
        return;
      }
      if (tamper === 'stall-blobs' && isBlob) {
        // Headers and one byte, then silence: the connection stays open with no more data.
        res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': '1000' });
        res.write('x');
        return;
      }
      if (tamper === 'schema1' && isManifest) {
        const body = JSON.stringify({ schemaVersion: 1, name: 'test/oci', tag: 'v1', fsLayers: [], history: [] });
        res.writeHead(200, { 'Content-Type': 'application/vnd.docker.distribution.manifest.v1+prettyjws' }).end(body);
        return;
      }
      const upstream = await forward(target, req);
      let body = upstream.body;
      const headers = upstream.headers;
      if (tamper === 'flip-blob-byte' && isBlob && body.length > 0) {
        body = Buffer.from(body);
        body[body.length - 1] = (body[body.length - 1] ?? 0) ^ 0xff;
      }
      if (tamper === 'pad-manifest' && isManifest) {
        body = Buffer.concat([body, Buffer.from('\n')]);
        delete headers['docker-content-digest'];
      }
      if (tamper === 'huge-manifest' && isManifest) {
        body = Buffer.concat([body, Buffer.alloc(5 * 1024 * 1024, ' ')]);
        delete headers['docker-content-digest'];
      }
      if (tamper === 'wrong-digest-header' && isManifest) headers['docker-content-digest'] = `sha256:${'0'.repeat(64)}`;
      if (tamper === 'trickle-blobs' && isBlob && upstream.status === 200) {
        res.writeHead(200, { ...headers, 'Content-Length': String(body.length) });
        // The pace is the fault itself: one 32 KiB chunk per 100 ms tick, until the body is sent or the client goes.
        let at = 0;
        const tick = setInterval(() => {
          if (res.destroyed || at >= body.length) {
            clearInterval(tick);
            if (!res.destroyed) res.end();
            return;
          }
          res.write(body.subarray(at, at + 32 * 1024));
          at += 32 * 1024;
        }, 100);
        res.once('close', () => clearInterval(tick));
        return;
      }
      res.writeHead(upstream.status, headers).end(body);
    })().catch((err: unknown) => res.writeHead(502).end(String(err)));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url: `http://${host}`,
    host,
    get redirects() {
      return state.redirects;
    },
    stop: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** One request passed on to the real registry: its status, the headers a client needs, the whole body. */
async function forward(target: string, req: IncomingMessage): Promise<{ status: number; headers: Record<string, string>; body: Buffer }> {
  const sent: Record<string, string> = { Accept: req.headers.accept ?? '*/*' };
  if (req.headers.authorization !== undefined) sent.Authorization = req.headers.authorization;
  const upstream = await fetch(`${target}${req.url ?? '/'}`, { method: req.method ?? 'GET', headers: sent, redirect: 'manual' });
  const body = Buffer.from(await upstream.arrayBuffer());
  const headers: Record<string, string> = { 'Content-Type': upstream.headers.get('content-type') ?? 'application/octet-stream' };
  for (const name of ['docker-content-digest', 'www-authenticate', 'location']) {
    const value = upstream.headers.get(name);
    if (value !== null) headers[name] = value;
  }
  return { status: upstream.status, headers, body };
}

/**
 * FAKE: a proxy in front of a real registry that holds every blob request until the test releases
 * it, oldest first, so a test sees how many blobs a client fetches at once.
 */
export async function startGatedProxy(target: string): Promise<{ host: string; held(): number; requested(): number; release(): void; stop(): Promise<void> }> {
  const waiting: (() => void)[] = [];
  let requested = 0;
  const server: Server = createServer((req, res) => {
    void (async () => {
      if (/\/blobs\/sha256:/.test(req.url ?? '')) {
        requested += 1;
        await new Promise<void>((resolve) => waiting.push(resolve));
      }
      const upstream = await forward(target, req);
      res.writeHead(upstream.status, upstream.headers).end(upstream.body);
    })().catch((err: unknown) => res.writeHead(502).end(String(err)));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    host: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    held: () => waiting.length,
    requested: () => requested,
    release: () => waiting.shift()?.(),
    stop: async () => {
      for (const go of waiting.splice(0)) go();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
