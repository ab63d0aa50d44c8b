// The machine's ceiling: a bare node:http server that reads the body and answers 200 (no signature, no storage).
import http from "node:http";

const server = http.createServer((req, res) => {
  req.on("data", () => undefined);
  req.on("end", () => {
    res.writeHead(200, { "content-type": "application/json", "content-length": 11 });
    res.end('{"ok":true}');
  });
});
server.keepAliveTimeout = 65_000;
server.listen(Number(process.env.PORT), "127.0.0.1", () => process.stdout.write("ready\n"));
process.on("SIGTERM", () => process.exit(0));
