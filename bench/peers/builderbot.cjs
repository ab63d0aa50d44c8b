// The peer: BuilderBot's Meta provider (@builderbot/provider-meta, a dev dependency), started the way its docs
// start a bot (createBot + MetaProvider + MemoryDB) on PORT. Its POST /webhook parses the JSON (polka + body-parser),
// checks no signature and keeps the messages in an in-memory queue that it drains 10 a second.
// Nothing here talks to the internet: the start-up profile call to graph.facebook.com is replaced by a no-op, and
// the one flow answers a keyword the benchmark never sends.
const { createBot, createFlow, addKeyword, MemoryDB } = require("@builderbot/bot");
const { MetaProvider } = require("@builderbot/provider-meta");

class LocalMetaProvider extends MetaProvider {
  async afterHttpServerInit() {
    this.emit("ready");
  }
}

async function main() {
  const provider = new LocalMetaProvider({ jwtToken: "bench", numberId: "106540352242922", verifyToken: "bench", version: "v18.0" });
  const flow = createFlow([addKeyword(["never-sent-by-the-benchmark"]).addAnswer("hi")]);
  const bot = await createBot({ flow, provider, database: new MemoryDB() });
  bot.httpServer(Number(process.env.PORT));
  const wait = () => (provider.server && provider.server.server && provider.server.server.listening ? process.stdout.write("ready\n") : setTimeout(wait, 50));
  wait();
}
main().catch((err) => {
  console.error(err);
  process.exit(1);
});
process.on("SIGTERM", () => process.exit(0));
