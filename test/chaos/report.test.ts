import { holds, render, snapshot } from "./report";

/**
 * docs/reliability.md is generated from docs/reliability.results.json by the tests that measure (test/chaos/report.ts):
 * it must be exactly what the generator writes, and every fault scenario in it must hold (nothing lost, repeats only
 * where a send's outcome was unknown).
 */
describe("docs/reliability.md", () => {
  it("is generated from the recorded results, never edited by hand", () => {
    const { results, markdown } = snapshot();
    expect(markdown).not.toBeNull();
    expect(markdown).toBe(render(results));
  });

  it("shows every fault scenario holding: zero lost, repeats only with an unknown outcome", () => {
    const { results } = snapshot();
    const faults = Object.values(results).filter((r) => r.section === "faults");
    expect(faults.map((r) => r.id)).toEqual(expect.arrayContaining(["F1-worker-sigkill", "F2-redis-stop-start", "F3-postgres-unreachable", "F4-cloud-api-storm", "F5-sigterm"]));
    for (const r of faults) {
      expect({ id: r.id, lost: r.figures.lost }).toEqual({ id: r.id, lost: 0 });
      expect(holds(r.figures)).toBe(true);
      expect(r.figures.repeatedUnknownOutcome).toBeLessThanOrEqual(Number(r.figures.unknownOutcome));
    }
  });

  it("renders the same text for the same results, whatever the order they were recorded in", () => {
    const { results } = snapshot();
    const reversed = Object.fromEntries(Object.entries(results).reverse());
    expect(render(reversed)).toBe(render(results));
  });
});
