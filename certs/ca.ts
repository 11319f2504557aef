// Local CA and TLS server certificate: created on first start in the data folder, reissued when needed.
import * as x509 from "@peculiar/x509";
import { createHash } from "node:crypto";
import { dirname, join, resolve } from "node:path";

x509.cryptoProvider.set(crypto);

/** What the server needs to listen with TLS, and what to tell the user about the CA. */
export interface ServerCertificate {
  /** PEM of the server (leaf) certificate, for `Deno.listenTls({ cert })`. */
  certPem: string;
  /** PKCS#8 PEM of the server's private key, for `Deno.listenTls({ key })`. */
  keyPem: string;
  /** Absolute path of the CA certificate that clients pass with `--ca`. */
  caPath: string;
  /** SHA-256 fingerprint of the CA certificate, as from {@linkcode certificateFingerprint}. */
  caFingerprint: string;
  /** True when this call created a new CA (clients must be given the new CA file). */
  created: boolean;
}

/** Options of {@linkcode ensureServerCertificate}. */
export interface EnsureServerCertificateOptions {
  /**
   * Extra names clients use to reach the server; each is an IP address if it parses as one, else a DNS name.
   * The first becomes the certificate's common name.
   * @default {[]}
   */
  hostnames?: string[];
  /**
   * The current time, for validity periods and the expiry check.
   * @default {new Date()}
   */
  now?: Date;
}

const DAY_MS = 24 * 60 * 60 * 1000;
const CLOCK_SKEW_MS = 60 * 60 * 1000;
const CA_VALIDITY_YEARS = 10;
const LEAF_VALIDITY_MS = 397 * DAY_MS;
const REISSUE_BEFORE_MS = 30 * DAY_MS;
const KEY_ALGORITHM: EcKeyGenParams = { name: "ECDSA", namedCurve: "P-256" };
const SIGNING_ALGORITHM: EcdsaParams = { name: "ECDSA", hash: "SHA-256" };

/**
 * Loads DIR/certs/{ca.pem,ca-key.pem,server.pem,server-key.pem}, creating any that are missing; reissues the
 * server certificate (from the existing CA) if it is missing, unreadable, not signed by the CA, expires within
 * 30 days, or lacks one of the wanted host names (localhost, `Deno.hostname()`, 127.0.0.1, ::1 and
 * `options.hostnames`). An existing `ca.pem` is never replaced: if it is unreadable, or `ca-key.pem` is missing
 * or does not match it, this throws.
 *
 * @example
 * ```ts
 * const { certPem, keyPem, caPath, caFingerprint, created } = await ensureServerCertificate("./data");
 * if (created) console.log(`New CA ${caPath} (SHA-256 ${caFingerprint}): give it to clients with --ca`);
 * const listener = Deno.listenTls({ port: 8443, cert: certPem, key: keyPem, alpnProtocols: ["filesync/1"] });
 * ```
 */
export async function ensureServerCertificate(
  dataDir: string,
  options: EnsureServerCertificateOptions = {},
): Promise<ServerCertificate> {
  const now = options.now ?? new Date();
  if (!(now instanceof Date) || Number.isNaN(now.getTime())) throw new TypeError("now must be a valid Date");
  const wanted = wantedNames(options.hostnames ?? [], safeHostname());

  const dir = resolve(dataDir, "certs");
  await makeFolder(resolve(dataDir), "data folder");
  await makeFolder(dir, "certificate folder", 0o700);
  const paths = {
    ca: join(dir, "ca.pem"),
    caKey: join(dir, "ca-key.pem"),
    server: join(dir, "server.pem"),
    serverKey: join(dir, "server-key.pem"),
  };

  let created = false;
  let ca: { cert: x509.X509Certificate; pem: string; key: CryptoKey };
  const caPem = await readIfExists(paths.ca);
  if (caPem === undefined) {
    ca = await createCa(now);
    // Key first, certificate last: a missing ca.pem always means "no CA yet".
    await writeAtomic(paths.caKey, await privateKeyPem(ca.key), 0o600);
    await writeAtomic(paths.ca, ca.pem, 0o644);
    created = true;
  } else {
    ca = await loadCa(paths.ca, caPem, paths.caKey);
  }

  let leafPem = await readIfExists(paths.server);
  let keyPem = await readIfExists(paths.serverKey);
  if (
    leafPem === undefined || keyPem === undefined ||
    await leafProblem(leafPem, keyPem, ca.cert, wanted, now) !== undefined
  ) {
    const leaf = await createLeaf(ca, wanted, now);
    leafPem = leaf.pem;
    keyPem = await privateKeyPem(leaf.key);
    await writeAtomic(paths.serverKey, keyPem, 0o600);
    await writeAtomic(paths.server, leafPem, 0o644);
  }

  return {
    certPem: firstCertificatePem(leafPem),
    keyPem,
    caPath: paths.ca,
    caFingerprint: certificateFingerprint(ca.pem),
    created,
  };
}

/** A node's certificate, signed by the data folder's CA. */
export interface NodeCertificate {
  /** PEM of the node (leaf) certificate, for the node's `--cert`. */
  certPem: string;
  /** PKCS#8 PEM of its private key, for the node's `--key`. */
  keyPem: string;
  /** Absolute path of the CA certificate that signed it (clients trust it with `--ca`). */
  caPath: string;
  /** SHA-256 fingerprint of that CA, as from {@linkcode certificateFingerprint}. */
  caFingerprint: string;
}

/** Options of {@linkcode issueNodeCertificate}. */
export interface IssueNodeCertificateOptions {
  /**
   * The names clients (or a load balancer in front) reach the node by, at least one; each is an IP address if it
   * parses as one, else a DNS name. The first becomes the common name; localhost, 127.0.0.1 and ::1 are added.
   */
  names: string[];
  /**
   * The current time, for the validity period.
   * @default {new Date()}
   */
  now?: Date;
}

/**
 * Signs a new certificate for another server node with the CA in DIR/certs/ (the one the server made on its first
 * start), so that clients trusting that one CA trust every node. Nothing is written: the caller saves the key
 * privately. Throws when there is no CA there yet or its key is missing or does not match; a name that is neither
 * a DNS name nor an IP address is a TypeError.
 *
 * @example
 * ```ts
 * const node = await issueNodeCertificate("./data", { names: ["node2.example.org", "sync.example.org"] });
 * await Deno.writeTextFile("node2-key.pem", node.keyPem, { mode: 0o600 });
 * await Deno.writeTextFile("node2.pem", node.certPem);
 * ```
 */
export async function issueNodeCertificate(
  dataDir: string,
  options: IssueNodeCertificateOptions,
): Promise<NodeCertificate> {
  const now = options.now ?? new Date();
  if (!(now instanceof Date) || Number.isNaN(now.getTime())) throw new TypeError("now must be a valid Date");
  if (!Array.isArray(options.names) || options.names.length === 0) {
    throw new TypeError("names must list at least one host name");
  }
  const wanted = wantedNames(options.names, undefined);
  const dir = resolve(dataDir, "certs");
  const paths = { ca: join(dir, "ca.pem"), caKey: join(dir, "ca-key.pem") };
  const caPem = await readIfExists(paths.ca);
  if (caPem === undefined) {
    throw new Error(
      `No CA in "${dir}": start filesync server --data ${dataDir} once (without --cert) to create it`,
    );
  }
  const ca = await loadCa(paths.ca, caPem, paths.caKey);
  const leaf = await createLeaf(ca, wanted, now);
  return {
    certPem: leaf.pem,
    keyPem: await privateKeyPem(leaf.key),
    caPath: paths.ca,
    caFingerprint: certificateFingerprint(ca.pem),
  };
}

/**
 * "AB:CD:..." uppercase SHA-256 of the DER of the first certificate in a PEM text.
 * Throws SyntaxError if the text holds no certificate.
 *
 * @example
 * ```ts
 * certificateFingerprint(await Deno.readTextFile("ca.pem")); // "3F:A0:…:9C" (32 pairs)
 * ```
 */
export function certificateFingerprint(pem: string): string {
  const digest = createHash("sha256").update(certificateDer(pem)).digest("hex").toUpperCase();
  return digest.match(/../g)!.join(":");
}

// --- names (pure) -----------------------------------------------------------------------------------------

type WantedName = { type: "dns" | "ip"; value: string };

/** The names the leaf must carry, canonical and without duplicates; the first is the common name. */
function wantedNames(hostnames: string[], machine: string | undefined): WantedName[] {
  if (!Array.isArray(hostnames)) throw new TypeError("hostnames must be an array of strings");
  const names: WantedName[] = [];
  const add = (name: WantedName) => {
    if (!names.some((n) => n.type === name.type && n.value === name.value)) names.push(name);
  };
  for (const host of hostnames) {
    if (typeof host !== "string") throw new TypeError("hostnames must be an array of strings");
    const name = parseHostName(host);
    if (name === undefined) {
      throw new TypeError(`Cannot use host name "${host}": not a DNS name or IP address`);
    }
    add(name);
  }
  const machineName = machine === undefined ? undefined : parseHostName(machine);
  if (machineName !== undefined) add(machineName);
  add({ type: "dns", value: "localhost" });
  add({ type: "ip", value: "127.0.0.1" });
  add({ type: "ip", value: "::1" });
  return names;
}

/** A host name as an IP (canonical text) or a lowercase DNS name; undefined if it is neither. */
function parseHostName(text: string): WantedName | undefined {
  const ip = canonicalIp(text);
  if (ip !== undefined) return { type: "ip", value: ip };
  const dns = text.toLowerCase().replace(/\.$/, "");
  const label = "[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?";
  const pattern = new RegExp(`^(?:\\*\\.)?${label}(?:\\.${label})*$`);
  return dns.length <= 253 && pattern.test(dns) ? { type: "dns", value: dns } : undefined;
}

/** Canonical text of an IPv4 or IPv6 address (RFC 5952 for IPv6), or undefined if `text` is not one. */
function canonicalIp(text: string): string | undefined {
  if (/^\d{1,3}(?:\.\d{1,3}){3}$/.test(text)) {
    const parts = text.split(".").map(Number);
    return parts.every((n) => n <= 255) ? parts.join(".") : undefined;
  }
  if (!/^[0-9a-fA-F:.]+$/.test(text) || !text.includes(":")) return undefined;
  try {
    return new URL(`http://[${text}]/`).hostname.slice(1, -1);
  } catch {
    return undefined;
  }
}

/** Why the stored leaf cannot be used (a short reason), or undefined if it is fine. */
async function leafProblem(
  leafPem: string,
  keyPem: string,
  caCert: x509.X509Certificate,
  wanted: WantedName[],
  now: Date,
): Promise<string | undefined> {
  let leaf: x509.X509Certificate;
  let key: CryptoKey;
  try {
    leaf = new x509.X509Certificate(leafPem);
    key = await importPrivateKey(keyPem);
  } catch {
    return "unreadable";
  }
  if (!await keyMatches(key, leaf)) return "key does not match";
  if (!await leaf.verify({ publicKey: caCert, signatureOnly: true })) return "not signed by the CA";
  if (leaf.notBefore.getTime() > now.getTime()) return "not yet valid";
  if (leaf.notAfter.getTime() - now.getTime() < REISSUE_BEFORE_MS) return "expires soon";
  const san = leaf.getExtension(x509.SubjectAlternativeNameExtension);
  const has = new Set(
    (san?.names.items ?? []).map((n) =>
      n.type === "ip" ? `ip:${canonicalIp(n.value) ?? n.value}` : `${n.type}:${n.value.toLowerCase()}`
    ),
  );
  const missing = wanted.find((n) => !has.has(`${n.type}:${n.value}`));
  return missing === undefined ? undefined : `lacks ${missing.value}`;
}

// --- certificates and keys --------------------------------------------------------------------------------

async function createCa(now: Date): Promise<{ cert: x509.X509Certificate; pem: string; key: CryptoKey }> {
  const keys = await crypto.subtle.generateKey(KEY_ALGORITHM, true, ["sign", "verify"]);
  const name = [{ CN: [`filesync local CA (${safeHostname() ?? "unknown host"})`] }];
  const notBefore = new Date(now.getTime() - CLOCK_SKEW_MS);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: name,
    issuer: name,
    notBefore,
    notAfter: new Date(new Date(notBefore).setUTCFullYear(notBefore.getUTCFullYear() + CA_VALIDITY_YEARS)),
    publicKey: keys.publicKey,
    signingKey: keys.privateKey,
    signingAlgorithm: SIGNING_ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { cert, pem: pemText(cert), key: keys.privateKey };
}

async function createLeaf(
  ca: { cert: x509.X509Certificate; key: CryptoKey },
  wanted: WantedName[],
  now: Date,
): Promise<{ pem: string; key: CryptoKey }> {
  const keys = await crypto.subtle.generateKey(KEY_ALGORITHM, true, ["sign", "verify"]);
  const notBefore = new Date(now.getTime() - CLOCK_SKEW_MS);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: [{ CN: [wanted[0].value] }],
    issuer: ca.cert.subjectName,
    notBefore,
    notAfter: new Date(notBefore.getTime() + LEAF_VALIDITY_MS),
    publicKey: keys.publicKey,
    signingKey: ca.key,
    signingAlgorithm: SIGNING_ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension(wanted.map((n) => ({ type: n.type, value: n.value }))),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(ca.cert),
    ],
  });
  return { pem: pemText(cert), key: keys.privateKey };
}

async function loadCa(
  caPath: string,
  caPem: string,
  keyPath: string,
): Promise<{ cert: x509.X509Certificate; pem: string; key: CryptoKey }> {
  let cert: x509.X509Certificate;
  try {
    cert = new x509.X509Certificate(firstCertificatePem(caPem));
  } catch {
    throw new SyntaxError(`Cannot read CA certificate "${caPath}": not a PEM certificate`);
  }
  const keyPem = await readIfExists(keyPath);
  if (keyPem === undefined) {
    throw new Error(
      `Cannot load CA key "${keyPath}": not found (remove "${caPath}" to create a new CA that clients must trust again)`,
    );
  }
  let key: CryptoKey;
  try {
    key = await importPrivateKey(keyPem);
  } catch {
    throw new SyntaxError(`Cannot read CA key "${keyPath}": not a PKCS#8 PEM ECDSA P-256 private key`);
  }
  if (!await keyMatches(key, cert)) {
    throw new Error(`Cannot load CA key "${keyPath}": it does not match "${caPath}"`);
  }
  return { cert, pem: pemText(cert), key };
}

async function importPrivateKey(pem: string): Promise<CryptoKey> {
  const match = /-----BEGIN PRIVATE KEY-----([\s\S]*?)-----END PRIVATE KEY-----/.exec(pem);
  if (match === null) throw new SyntaxError("no PRIVATE KEY block");
  return await crypto.subtle.importKey("pkcs8", base64Bytes(match[1]), KEY_ALGORITHM, true, ["sign"]);
}

async function privateKeyPem(key: CryptoKey): Promise<string> {
  return x509.PemConverter.encode(await crypto.subtle.exportKey("pkcs8", key), "PRIVATE KEY") + "\n";
}

/** Whether the private key belongs to the certificate's public key. */
async function keyMatches(key: CryptoKey, cert: x509.X509Certificate): Promise<boolean> {
  try {
    const priv = await crypto.subtle.exportKey("jwk", key);
    const pub = await crypto.subtle.exportKey("jwk", await cert.publicKey.export());
    return priv.crv === pub.crv && priv.x === pub.x && priv.y === pub.y;
  } catch {
    return false;
  }
}

function pemText(cert: x509.X509Certificate): string {
  return cert.toString("pem").trim() + "\n";
}

/** A positive 16-byte serial number in hex (top bit clear, first byte never zero). */
function randomSerial(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[0] = (bytes[0] & 0x7f) | 0x01;
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function firstCertificatePem(pem: string): string {
  const der = certificateDer(pem);
  return x509.PemConverter.encode(der, "CERTIFICATE").trim() + "\n";
}

function certificateDer(pem: string): Uint8Array<ArrayBuffer> {
  const match = /-----BEGIN CERTIFICATE-----([^-]*)-----END CERTIFICATE-----/.exec(pem);
  if (match === null) throw new SyntaxError("Cannot read certificate: no PEM CERTIFICATE block");
  return base64Bytes(match[1]);
}

function base64Bytes(text: string): Uint8Array<ArrayBuffer> {
  const compact = text.replace(/\s+/g, "");
  if (compact === "" || compact.length % 4 !== 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(compact)) {
    throw new SyntaxError("Cannot read PEM block: invalid base64");
  }
  return Uint8Array.from(atob(compact), (c) => c.charCodeAt(0));
}

// --- files ------------------------------------------------------------------------------------------------

function safeHostname(): string | undefined {
  try {
    return Deno.hostname() || undefined;
  } catch {
    return undefined;
  }
}

async function readIfExists(path: string): Promise<string | undefined> {
  try {
    return await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw new Error(`Cannot read "${path}": ${reason(error)}`, { cause: error });
  }
}

/** Writes via a temp file in the same folder and a rename; the temp file is created with `mode`. */
async function writeAtomic(path: string, text: string, mode: number): Promise<void> {
  const temp = `${path}.tmp-${crypto.randomUUID()}`;
  try {
    await Deno.writeTextFile(temp, text, { mode, createNew: true });
    await Deno.rename(temp, path);
  } catch (error) {
    await Deno.remove(temp).catch(() => {});
    throw new Error(`Cannot write "${path}": ${reason(error)}`, { cause: error });
  }
}

/** Creates a folder (and its parents); on failure names the path that is in the way. */
async function makeFolder(path: string, what: string, mode?: number): Promise<void> {
  try {
    await Deno.mkdir(path, { recursive: true, mode });
    if ((await Deno.stat(path)).isDirectory) return;
  } catch (error) {
    throw new Error(`Cannot create ${what} "${path}": ${await blocker(path) ?? reason(error)}`, {
      cause: error,
    });
  }
  throw new Error(`Cannot create ${what} "${path}": "${path}" is not a folder`);
}

/** The nearest existing ancestor-or-self of `path` if it is not a folder, as a message; else undefined. */
async function blocker(path: string): Promise<string | undefined> {
  for (let p = path;; p = dirname(p)) {
    try {
      const info = await Deno.stat(p);
      return info.isDirectory ? undefined : `"${p}" is not a folder`;
    } catch {
      if (dirname(p) === p) return undefined;
    }
  }
}

function reason(error: unknown): string {
  if (error instanceof Deno.errors.PermissionDenied) return "permission denied";
  if (error instanceof Deno.errors.NotFound) return "not found";
  return error instanceof Error ? error.message : String(error);
}
