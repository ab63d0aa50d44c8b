import type { OutboundContent } from "../../src/messaging/outbox";
import { FakeGraph } from "./fake-graph";
import { createHarness, waitFor, type Harness } from "./harness";

const RATE = 20;
const COUNT = 60;
let graph: FakeGraph;
let h: Harness;

beforeAll(async () => {
  graph = new FakeGraph();
  await graph.listen();
  h = await createHarness(graph.url, { OUTBOUND_RATE_PER_SECOND: String(RATE), OUTBOUND_CONCURRENCY: "50", OUTBOUND_RECIPIENT_GAP_MS: "0" });
  h.startOutbound();
});
afterAll(async () => {
  await h.close();
  await graph.close();
});

test(`the per-number limiter holds ${RATE} messages per second (delayed jobs, nothing lost)`, async () => {
  const ids: string[] = [];
  for (let i = 0; i < COUNT; i++) {
    const contactId = await h.contact(`+3161234${String(i).padStart(4, "0")}`);
    const text: OutboundContent = { type: "text", text: { body: `m${i}` } };
    ids.push(...(await h.send(contactId, [text])));
  }
  await waitFor(async () => (await h.prisma.message.count({ where: { id: { in: ids }, status: "sent" } })) === COUNT, 15_000, "all sent");
  const times = graph.requests.map((r) => r.at).sort((a, b) => a - b);
  expect(times).toHaveLength(COUNT); // each exactly once
  // Fixed one-second windows: any sliding second sees at most two windows' worth; the whole run needs ≥ 3 windows
  // (a limiter letting 40/s through would finish in two)
  let maxInWindow = 0;
  for (let i = 0; i < times.length; i++) {
    let j = i;
    while (j < times.length && times[j]! - times[i]! < 1000) j++;
    maxInWindow = Math.max(maxInWindow, j - i);
  }
  expect(maxInWindow).toBeLessThanOrEqual(2 * RATE);
  expect(times[times.length - 1]! - times[0]!).toBeGreaterThanOrEqual(Math.floor(COUNT / RATE - 1) * 1000 - 100);
  // and the first window is capped at RATE. The first arrival may lag its window's start (a busy machine), so the
  // next window can begin earlier than 1 s after it: allow 200 ms of that lag
  expect(times.filter((t) => t - times[0]! < 1000 - 200).length).toBeLessThanOrEqual(RATE);
});
