// Shared by the tests: the server under test (GAMESOCKET_URL), guests, and a WebSocket
// (the ws package) that keeps a log of the URLs it opened and the frames it sent.

import WS from "ws";
import { guestSignIn } from "../gamesocket.js";

export const BASE_URL = process.env.GAMESOCKET_URL || "";
export const SKIP = BASE_URL ? false : "GAMESOCKET_URL is not set (tests/system/test_js_client.py sets it)";

export { WS };

/** A new guest: `{token, userId, conn}` where `conn` is the REST helpers' first argument. */
export async function guest() {
  const { access_token: token, user_id: userId } = await guestSignIn({ baseUrl: BASE_URL });
  return { token, userId, conn: { baseUrl: BASE_URL, token } };
}

/** A ws subclass that records into `log`: `urls` (one per socket), `sent` ({socket, message}). */
export function recordingWebSocket() {
  const log = { urls: [], sent: [] };
  class RecordingWebSocket extends WS {
    constructor(url, ...rest) {
      super(url, ...rest);
      this.index = log.urls.length;
      log.urls.push(String(url));
    }

    send(data, ...rest) {
      log.sent.push({ socket: this.index, message: JSON.parse(data) });
      return super.send(data, ...rest);
    }
  }
  return { RecordingWebSocket, log };
}

/** Wait until `check()` is truthy (polling), or fail after `timeoutMs`. */
export async function until(check, { timeoutMs = 10000, what = "a condition" } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** The first `state`/`update` snapshot of a client (or the one it already has). */
export function firstSnapshot(client) {
  if (client.snapshot) return Promise.resolve(client.snapshot);
  return client.waitFor("snapshot");
}

/** A free port with nothing listening on it (for the back-off test). */
export async function deadPort() {
  const net = await import("node:net");
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}
