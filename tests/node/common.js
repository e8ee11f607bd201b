"use strict";
// Helpers shared by the interop peers: one JSON object per stdout line, and a
// WebSocket wrapper whose messages can be awaited in order.

function report(object) {
  process.stdout.write(JSON.stringify(object) + "\n");
}

// A text of `size` bytes that deflate shrinks a lot, but not trivially.
function compressibleText(size) {
  const words = ["wsjet", "node", "deflate", "frame", "window", "inflate", "socket", "message"];
  const parts = [];
  let length = 0;
  for (let i = 0; length < size; i++) {
    const part = words[(i * 7 + (i >> 3)) % words.length] + (i % 97) + " ";
    parts.push(part);
    length += part.length;
  }
  return parts.join("").slice(0, size);
}

// Messages of a ws WebSocket as an awaitable queue: `await inbox.next()`.
class Inbox {
  constructor(ws) {
    this.items = [];
    this.waiters = [];
    this.closed = null;
    ws.on("message", (data, isBinary) => this.push({ data, isBinary }));
    ws.on("close", (code, reason) => {
      this.closed = { code, reason: reason.toString() };
      for (const waiter of this.waiters.splice(0)) waiter.reject(new Error("closed " + code));
    });
  }

  push(item) {
    const waiter = this.waiters.shift();
    if (waiter) waiter.resolve(item);
    else this.items.push(item);
  }

  next() {
    if (this.items.length) return Promise.resolve(this.items.shift());
    if (this.closed) return Promise.reject(new Error("closed " + this.closed.code));
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }
}

function once(emitter, event) {
  return new Promise((resolve) => emitter.once(event, (...args) => resolve(args)));
}

module.exports = { report, compressibleText, Inbox, once };
