#!/usr/bin/env node
// A Socket.IO relay: the do-it-yourself live chat that Salam is benchmarked against.
//
// Agents connect with `auth: { agent: "a0" }` and are registered under that id.
// Visitors emit `chat` with `{ to, id, text }` and an ack callback; the relay forwards
// `{ from, id, text }` to the agent's socket and acks the visitor with "ok" (or
// "no_agent" when no agent has that id). Nothing is stored: this is the relay at its
// cheapest, which is what people start from.
//
// Configured like a benchmark peer should be: WebSocket transport only (no long-polling
// upgrade dance), per-message deflate and HTTP compression off, the default `ws` engine.
//
// Usage: node socketio-relay.js [--port 9303] [--host 127.0.0.1]
'use strict';

const http = require('node:http');
const { Server } = require('socket.io');

function option(name, fallback) {
  const at = process.argv.indexOf(`--${name}`);
  return at > 0 && at + 1 < process.argv.length ? process.argv[at + 1] : fallback;
}

const host = option('host', process.env.HOST || '127.0.0.1');
const port = Number(option('port', process.env.PORT || 9303));

const httpServer = http.createServer((req, res) => {
  res.writeHead(404).end();
});
const io = new Server(httpServer, {
  transports: ['websocket'],
  perMessageDeflate: false,
  httpCompression: false,
  serveClient: false,
  maxHttpBufferSize: 64 * 1024,
  cors: { origin: true },
});

const agents = new Map();

io.on('connection', (socket) => {
  const agent = socket.handshake.auth && socket.handshake.auth.agent;
  if (typeof agent === 'string' && agent.length > 0) {
    agents.set(agent, socket);
    socket.on('disconnect', () => {
      if (agents.get(agent) === socket) agents.delete(agent);
    });
    return;
  }
  socket.on('chat', (message, ack) => {
    const target = message && typeof message.to === 'string' ? agents.get(message.to) : undefined;
    if (target) {
      target.emit('chat', { from: socket.id, id: message.id, text: message.text });
    }
    if (typeof ack === 'function') ack(target ? 'ok' : 'no_agent');
  });
});

httpServer.listen(port, host, () => {
  console.log(`socketio-relay is listening on ws://${host}:${port}/socket.io/ (pid ${process.pid})`);
});

function shutdown() {
  io.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
