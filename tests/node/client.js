"use strict";
// Node's ws as a CLIENT of a wsjet server (driven by tests/test_node_interop.py).
//
//   node client.js PORT
//
// The wsjet server answers on these paths: /echo (echoes every message), /ping
// (pings us, then tells us it got the pong), /close (closes with the code we send).
// Every check prints one JSON line {"step": ..., ...}; the Python test asserts on them.
// Exits 0 when every step ran (the values are judged by the Python side).

const WebSocket = require("ws");
const { report, compressibleText, Inbox, once } = require("./common");

const port = Number(process.argv[2]);
const base = `ws://127.0.0.1:${port}`;

async function open(path, options = {}) {
  const ws = new WebSocket(base + path, ["interop.v1"], options);
  const inbox = new Inbox(ws);
  // Listen before "open": a ping sent right after the handshake may arrive with it.
  const firstPing = once(ws, "ping");
  let socket = null;
  ws.on("upgrade", (response) => { socket = response.socket; });
  await once(ws, "open");
  return { ws, inbox, firstPing, socket: () => socket };
}

async function roundTrip(conn, data, options) {
  conn.ws.send(data, options);
  const { data: back, isBinary } = await conn.inbox.next();
  return { back, isBinary };
}

async function echoSteps() {
  const conn = await open("/echo");
  const { ws, inbox } = conn;
  report({ step: "open", extensions: ws.extensions, protocol: ws.protocol });

  // Text, including non-ASCII and empty.
  const texts = [];
  for (const text of ["hello", "café ☕ 𝄞", ""]) {
    const { back, isBinary } = await roundTrip(conn, text);
    texts.push({ sent: text, back: back.toString("utf8"), isBinary });
  }
  report({ step: "text", results: texts });

  // Binary: small, empty, and 100 kB of incompressible bytes.
  const blobs = [Buffer.from([0, 1, 2, 255]), Buffer.alloc(0), require("crypto").randomBytes(100000)];
  const binaries = [];
  for (const blob of blobs) {
    const { back, isBinary } = await roundTrip(conn, blob);
    binaries.push({ length: blob.length, same: Buffer.compare(back, blob) === 0, isBinary });
  }
  report({ step: "binary", results: binaries });

  // Fragmented: ws sends one message as several frames with {fin: false}.
  ws.send("frag", { fin: false });
  ws.send("ment", { fin: false });
  ws.send("ed", { fin: true });
  const text = await inbox.next();
  ws.send(Buffer.from([1, 2]), { binary: true, fin: false });
  ws.send(Buffer.from([3]), { binary: true, fin: false });
  ws.send(Buffer.from([4, 5]), { binary: true, fin: true });
  const binary = await inbox.next();
  // A large fragmented message: its first fragment is over ws's threshold, so it is compressed.
  const big = compressibleText(150000);
  ws.send(big.slice(0, 50000), { fin: false });
  ws.send(big.slice(50000, 100000), { fin: false });
  ws.send(big.slice(100000), { fin: true });
  const bigBack = await inbox.next();
  report({
    step: "fragmented",
    text: text.data.toString(),
    textIsBinary: text.isBinary,
    binary: [...binary.data],
    binaryIsBinary: binary.isBinary,
    bigSame: bigBack.data.toString() === big,
  });

  // Compression: 200 kB of text both ways; count the bytes on the TCP socket.
  const socket = conn.socket();
  const read0 = socket.bytesRead, written0 = socket.bytesWritten;
  const payload = compressibleText(200000);
  const { back } = await roundTrip(conn, payload);
  report({
    step: "compression",
    same: back.toString() === payload,
    size: payload.length,
    wireWritten: socket.bytesWritten - written0,
    wireRead: socket.bytesRead - read0,
  });

  // Ping with a payload; the pong echoes it.
  ws.ping(Buffer.from("node-ping"));
  const [pong] = await once(ws, "pong");
  report({ step: "ping", pong: pong.toString() });

  // We close with an application code; wsjet answers the closing handshake.
  ws.close(4000, "bye from node");
  const [code, reason] = await once(ws, "close");
  report({ step: "client-close", code, reason: reason.toString() });
}

async function serverPingSteps() {
  const { ws, inbox, firstPing } = await open("/ping");
  const [data] = await firstPing; // ws answers with a pong by itself
  const { data: after } = await inbox.next();
  report({ step: "server-ping", ping: data.toString(), after: after.toString() });
  ws.close();
  await once(ws, "close");
}

async function serverCloseSteps() {
  const results = [];
  for (const wanted of [1000, 1001, 3000, 4999]) {
    const { ws } = await open("/close");
    ws.send(String(wanted));
    const [code, reason] = await once(ws, "close");
    results.push({ wanted, code, reason: reason.toString() });
  }
  report({ step: "server-close", results });
}

async function noCompressionSteps() {
  const { ws, inbox } = await open("/echo", { perMessageDeflate: false });
  ws.send("plain");
  const { data } = await inbox.next();
  report({ step: "no-compression", extensions: ws.extensions, back: data.toString() });
  ws.close(1000);
  await once(ws, "close");
}

(async () => {
  await echoSteps();
  await serverPingSteps();
  await serverCloseSteps();
  await noCompressionSteps();
  report({ step: "done" });
})().catch((error) => {
  report({ step: "error", error: String(error && error.stack || error) });
  process.exitCode = 1;
});
