"use strict";
// Node's ws as a SERVER for the wsjet client (driven by tests/test_node_interop.py).
//
//   node server.js PORT        (0 picks a free port)
//
// Prints {"event": "listening", "port": N} once ready, then one JSON line per event
// (pings and closes it sees). Stops when its stdin ends. Paths:
//   /echo        echoes every message with its type; the text "stats" is answered with
//                {"bytesRead", "bytesWritten", "extensions", "protocol"} of this connection
//   /fragments   sends fragmented messages (text, binary, a large compressed one), then "done"
//   /ping        pings the client with "node-ping", then sends "pong:<data>" when the pong comes
//   /close/CODE  closes with CODE and the reason "bye from node"

const { WebSocketServer } = require("ws");
const { report, compressibleText } = require("./common");

const server = new WebSocketServer({
  host: "127.0.0.1",
  port: Number(process.argv[2] || 0),
  perMessageDeflate: true, // off by default in a ws server
  handleProtocols: (protocols) => (protocols.has("interop.v1") ? "interop.v1" : false),
});

server.on("listening", () => report({ event: "listening", port: server.address().port }));

server.on("connection", (ws, request) => {
  const path = request.url;
  const socket = request.socket;
  ws.on("ping", (data) => report({ event: "ping", path, data: data.toString() }));
  ws.on("close", (code, reason) => report({ event: "close", path, code, reason: reason.toString() }));
  ws.on("error", (error) => report({ event: "error", path, error: String(error) }));

  if (path === "/echo") {
    ws.on("message", (data, isBinary) => {
      if (!isBinary && data.toString() === "stats") {
        ws.send(JSON.stringify({
          bytesRead: socket.bytesRead,
          bytesWritten: socket.bytesWritten,
          extensions: ws.extensions,
          protocol: ws.protocol,
        }));
      } else {
        ws.send(data, { binary: isBinary });
      }
    });
  } else if (path === "/fragments") {
    ws.send("frag", { fin: false });
    ws.send("ment", { fin: false });
    ws.send("ed", { fin: true });
    ws.send(Buffer.from([1, 2]), { binary: true, fin: false });
    ws.send(Buffer.from([3]), { binary: true, fin: false });
    ws.send(Buffer.from([4, 5]), { binary: true, fin: true });
    const big = compressibleText(150000);
    ws.send(big.slice(0, 50000), { fin: false });
    ws.send(big.slice(50000, 100000), { fin: false });
    ws.send(big.slice(100000), { fin: true });
    ws.send("done");
  } else if (path === "/ping") {
    ws.on("pong", (data) => ws.send("pong:" + data.toString()));
    ws.ping(Buffer.from("node-ping"));
  } else if (path.startsWith("/close/")) {
    ws.close(Number(path.slice("/close/".length)), "bye from node");
  } else {
    ws.close(1008, "unknown path");
  }
});

process.stdin.on("data", () => {});
process.stdin.on("end", () => {
  for (const client of server.clients) client.terminate();
  server.close(() => process.exit(0));
});
