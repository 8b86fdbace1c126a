// The node socket.io peer of switchboard's Socket.IO fan-out benchmark: the smallest
// socket.io 4.x server that does what the benchmark asks, with socket.io's default
// configuration.
//
// - Socket.IO on /socket.io/ (the default path), root namespace /.
// - join(room, ack): the socket joins room, then the ack is answered {"ok":true}.
// - pub(...args): pub(...args) to every room the sender is in, the sender excluded (as
//   switchboard's relay = ["pub"] does with relay_to = "rooms", sender = false).
//
// `node server.mjs --listen ADDR` (port 0 picks a free port) prints
// `listening on http://ADDR` once bound. Node runs JavaScript on one thread; bench/run.sh
// pins the whole process to one core, as it does the other servers.
import { createServer } from "node:http";
import { Server } from "socket.io";

function parseArgs(argv) {
  let listen = "127.0.0.1:8000";
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--listen" && i + 1 < argv.length) {
      listen = argv[++i];
    } else if (argv[i] === "-h" || argv[i] === "--help") {
      console.log("usage: node server.mjs [--listen 127.0.0.1:8000]");
      process.exit(0);
    } else {
      console.error(`unknown argument ${argv[i]}`);
      process.exit(2);
    }
  }
  const colon = listen.lastIndexOf(":");
  const host = listen.slice(0, colon).replace(/^\[(.*)\]$/, "$1");
  const port = Number(listen.slice(colon + 1));
  if (colon < 0 || !Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`--listen ${listen}: expected HOST:PORT`);
    process.exit(2);
  }
  return { host, port };
}

const { host, port } = parseArgs(process.argv.slice(2));
const httpServer = createServer();
const io = new Server(httpServer);

io.on("connection", (socket) => {
  socket.on("join", async (room, ack) => {
    await socket.join(room);
    if (typeof ack === "function") ack({ ok: true });
  });
  socket.on("pub", (...args) => {
    socket.to([...socket.rooms]).emit("pub", ...args);
  });
});

httpServer.listen(port, host, () => {
  const { address, family, port: bound } = httpServer.address();
  const shown = family === "IPv6" ? `[${address}]` : address;
  console.log(`listening on http://${shown}:${bound}`);
});
process.on("SIGTERM", () => process.exit(0));
