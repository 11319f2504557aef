// The `filesync server cert` command: a certificate for another server node, signed by this data folder's CA.
import { parseArgs } from "node:util";
import { dirname, join, resolve } from "node:path";
import { issueNodeCertificate } from "../certs/ca.ts";
import { UsageError, UserError } from "../protocol/user_error.ts";

/** Help text of `filesync server cert`. */
export const CERT_HELP = `Usage: filesync server cert --data DIR --name HOST [--name HOST …] --out PREFIX

Signs a certificate for another server node with the CA in DIR/certs/ (made by the server's first start),
so clients that trust that one CA (--ca DIR/certs/ca.pem) trust every node. Writes PREFIX.pem (the
certificate) and PREFIX-key.pem (its private key, mode 0600); when PREFIX is a folder, FOLDER/HOST.pem and
FOLDER/HOST-key.pem, named by the first --name. Start the node with --cert PREFIX.pem --key PREFIX-key.pem.
Existing files are never replaced.

Options:
  --data DIR    data folder whose CA signs (certs/ca.pem and certs/ca-key.pem)
  --name HOST   a name clients reach the node by: DNS name or IP address, once per name; behind a load
                balancer, its name too (TLS passes through it to the node). The first is the common
                name; localhost, 127.0.0.1 and ::1 are always added
  --out PREFIX  where to write the two files (see above)
  -h, --help    show this help
`;

/** Where `--out` puts the certificate and the key: PREFIX.pem and PREFIX-key.pem, or FOLDER/NAME(.pem|-key.pem). */
export async function certPaths(out: string, firstName: string): Promise<{ cert: string; key: string }> {
  let prefix = out;
  const isFolder = out.endsWith("/") || await Deno.stat(out).then((info) => info.isDirectory, () => false);
  if (isFolder) prefix = join(out, firstName.replace(/[^A-Za-z0-9._-]/g, "_"));
  else prefix = out.replace(/\.pem$/, "");
  return { cert: `${prefix}.pem`, key: `${prefix}-key.pem` };
}

/** Runs `filesync server cert ARGS`; resolves with the exit code. */
export async function certCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      data: { type: "string" },
      name: { type: "string", multiple: true },
      out: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    allowPositionals: false,
    strict: true,
  });
  if (values.help) {
    console.log(CERT_HELP);
    return 0;
  }
  for (const option of ["data", "name", "out"] as const) {
    if (!values[option]?.length) {
      throw new UsageError(`Missing --${option} (see filesync server cert --help)`);
    }
  }
  const names = values.name!;
  const paths = await certPaths(values.out!, names[0]);
  for (const path of [paths.cert, paths.key]) {
    if (await Deno.lstat(path).then(() => true, () => false)) {
      throw new UserError(`"${path}" already exists: remove it first, or give another --out`);
    }
  }
  let node;
  try {
    node = await issueNodeCertificate(values.data!, { names });
  } catch (error) {
    if (error instanceof TypeError) {
      const bad = /^Cannot use host name "(.*)": (.*)$/.exec(error.message);
      throw new UsageError(bad ? `Invalid --name "${bad[1]}": ${bad[2]}` : error.message);
    }
    throw new UserError((error as Error).message);
  }
  try {
    await Deno.mkdir(dirname(paths.key), { recursive: true });
  } catch (error) {
    throw new UserError(`Cannot create folder "${dirname(paths.key)}": ${(error as Error).message}`);
  }
  // The key first, the certificate last: a certificate on disk always has its key beside it.
  await writeNew(paths.key, node.keyPem, 0o600);
  await writeNew(paths.cert, node.certPem, 0o644);
  console.log(`wrote ${paths.cert} and ${paths.key} (private, mode 0600) for ${names.join(", ")}`);
  console.log(`signed by CA ${node.caPath} (SHA-256 ${node.caFingerprint}): clients trust it with --ca`);
  console.log(`start the node with: --cert ${resolve(paths.cert)} --key ${resolve(paths.key)}`);
  return 0;
}

/** Writes a file that must not exist yet, through a temp file in its folder and a rename. */
async function writeNew(path: string, text: string, mode: number): Promise<void> {
  const temp = `${path}.tmp-${crypto.randomUUID()}`;
  try {
    await Deno.writeTextFile(temp, text, { mode, createNew: true });
    // The mode given at creation is narrowed by the umask; the key must be 0600 whatever it is.
    if (Deno.build.os !== "windows") await Deno.chmod(temp, mode);
    await Deno.rename(temp, path);
  } catch (error) {
    await Deno.remove(temp).catch(() => {});
    throw new UserError(`Cannot write "${path}": ${(error as Error).message}`);
  }
}
