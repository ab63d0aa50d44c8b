// Express's own cost: a no-op POST /webhook route that reads the body as raw bytes (as the bot's route does) and
// answers 200 JSON. No signature, no storage.
import express from "express";

const app = express();
app.disable("x-powered-by");
app.post("/webhook", express.raw({ type: () => true, limit: 6 * 1024 * 1024 }), (_req, res) => {
  res.status(200).json({ ok: true });
});
const server = app.listen(Number(process.env.PORT), "127.0.0.1", () => process.stdout.write("ready\n"));
server.keepAliveTimeout = 65_000;
process.on("SIGTERM", () => process.exit(0));
