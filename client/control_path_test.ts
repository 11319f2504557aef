// Tests for the control socket path rules: in the folder while it fits, else the private fallback.
import assert from "node:assert/strict";
import { controlSocketPath, folderKey, MAX_SOCKET_PATH_BYTES, privateFolderProblem } from "./control_path.ts";

const dirOfLength = (n: number) => "/" + "d".repeat(n - 1);

Deno.test("controlSocketPath() is DIR/.filesync/control.sock while it fits", () => {
  assert.deepEqual(controlSocketPath("/home/me/Sync", { uid: 1000 }), {
    path: "/home/me/Sync/.filesync/control.sock",
  });
  // "/.filesync/control.sock" is 23 bytes: a folder of 84 bytes makes exactly 107.
  const dir = dirOfLength(MAX_SOCKET_PATH_BYTES - 23);
  assert.deepEqual(controlSocketPath(dir, { uid: 1000 }).path, `${dir}/.filesync/control.sock`);
});

Deno.test("controlSocketPath() falls back past 107 bytes: XDG_RUNTIME_DIR, else /tmp/filesync-UID", () => {
  const dir = dirOfLength(MAX_SOCKET_PATH_BYTES - 22);
  const key = folderKey(dir);
  assert.match(key, /^[0-9a-f]{16}$/);
  assert.deepEqual(controlSocketPath(dir, { uid: 1000, runtimeDir: "/run/user/1000" }), {
    path: `/run/user/1000/filesync/${key}.sock`,
    fallbackDir: "/run/user/1000/filesync",
  });
  assert.deepEqual(controlSocketPath(dir, { uid: 1000 }), {
    path: `/tmp/filesync-1000/${key}.sock`,
    fallbackDir: "/tmp/filesync-1000",
  });
});

Deno.test("controlSocketPath() counts bytes, not characters", () => {
  // 40 three-byte characters: 40 characters, 120 bytes.
  const dir = "/" + "€".repeat(40);
  assert.deepEqual(controlSocketPath(dir, { uid: 7 }).fallbackDir, "/tmp/filesync-7");
});

Deno.test("controlSocketPath() skips a relative or too long XDG_RUNTIME_DIR", () => {
  const dir = dirOfLength(200);
  assert.deepEqual(controlSocketPath(dir, { uid: 5, runtimeDir: "run/user" }).fallbackDir, "/tmp/filesync-5");
  assert.deepEqual(
    controlSocketPath(dir, { uid: 5, runtimeDir: dirOfLength(100) }).fallbackDir,
    "/tmp/filesync-5",
  );
});

Deno.test("folderKey() differs between folders and is stable", () => {
  assert.deepEqual(folderKey("/a"), folderKey("/a"));
  assert.deepEqual(folderKey("/a") === folderKey("/b"), false);
});

Deno.test("privateFolderProblem() accepts only a 0700 folder of this user", () => {
  const folder = { isDirectory: true, isSymlink: false, uid: 1000, mode: 0o40700 };
  assert.deepEqual(privateFolderProblem(folder, 1000), null);
  assert.match(privateFolderProblem({ ...folder, uid: 0 }, 1000)!, /another user \(uid 0\)/);
  assert.match(privateFolderProblem({ ...folder, mode: 0o40755 }, 1000)!, /mode 755/);
  assert.match(privateFolderProblem({ ...folder, mode: 0o41777 }, 1000)!, /mode 777/);
  assert.match(
    privateFolderProblem({ ...folder, isSymlink: true, isDirectory: false }, 1000)!,
    /not a folder/,
  );
  assert.match(privateFolderProblem({ ...folder, isDirectory: false }, 1000)!, /not a folder/);
});
