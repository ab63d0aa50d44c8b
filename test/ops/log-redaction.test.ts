import { createLogger, maskPhone, withRequestId } from "../../src/observability/logger";
import { runWithRequestId } from "../../src/observability/request-context";

/**
 * The logger's safety net: fields that may carry secrets or personal data are replaced before a line is written,
 * whatever logger (child or not) writes them. (The whole-conversation checks, at debug level on the real system, are
 * in request-id-propagation.test.ts and test/attacks/secrets.test.ts: a scripted life with a tenant, keys, codes, a
 * PIN and a recovery email, every captured line searched for each token, code, PIN, email and full number.)
 */
function capture(level = "info") {
  const lines: string[] = [];
  const logger = createLogger({ level, destination: { write: (l: string) => void lines.push(l) } });
  return { logger, lines, parsed: () => lines.map((l) => JSON.parse(l) as Record<string, any>) };
}

describe("log redaction", () => {
  it("replaces secret fields at the top level and one level down", () => {
    const { logger, lines, parsed } = capture();
    logger.info(
      {
        accessToken: "EAAGsecret1",
        token: "tok-secret2",
        authorization: "Bearer secret3",
        otp: "481516",
        pin: "2342",
        text: "my code is 481516",
        body: { text: "hello secret4" },
        payload: { anything: "secret5" },
        secret: "secret6",
        apiKey: "wk_secret7",
        headers: { authorization: "Bearer secret8", "x-hub-signature-256": "sha256=secret9", "content-type": "application/json" },
        tenant: { accessToken: "EAAGsecret10", token: "secret11", name: "Acme" },
        wamid: "wamid.KEEP",
        messageId: "keep-this-id",
      },
      "something happened",
    );
    const line = lines.join("");
    for (let i = 1; i <= 11; i++) expect(line).not.toMatch(new RegExp(`secret${i}\\b`));
    expect(line).not.toContain("481516");
    expect(line).not.toContain("2342");
    const [l] = parsed();
    expect(l).toMatchObject({
      accessToken: "[redacted]",
      token: "[redacted]",
      authorization: "[redacted]",
      otp: "[redacted]",
      pin: "[redacted]",
      text: "[redacted]",
      body: "[redacted]",
      payload: "[redacted]",
      secret: "[redacted]",
      apiKey: "[redacted]",
      headers: { authorization: "[redacted]", "x-hub-signature-256": "[redacted]", "content-type": "application/json" },
      tenant: { accessToken: "[redacted]", token: "[redacted]", name: "Acme" },
      // what is needed to trace a message stays
      wamid: "wamid.KEEP",
      messageId: "keep-this-id",
      msg: "something happened",
    });
  });

  it("redacts in child loggers, in request-id loggers and under a request context too", () => {
    const { logger, parsed } = capture();
    runWithRequestId("req-1", () => {
      logger.child({ component: "x" }).warn({ accessToken: "EAAGchild" }, "child");
      withRequestId(logger, "req-2").error({ headers: { authorization: "Bearer k" }, otp: "123456" }, "bound");
    });
    const [a, b] = parsed();
    expect(a).toMatchObject({ component: "x", reqId: "req-1", accessToken: "[redacted]" });
    expect(b).toMatchObject({ reqId: "req-2", headers: { authorization: "[redacted]" }, otp: "[redacted]" });
  });

  it("masks phone numbers for the lines that need one", () => {
    expect(maskPhone("+447700900123")).toBe("+4477••••••23");
    expect(maskPhone("447700900123")).not.toContain("7009001");
    expect(maskPhone(undefined)).toBeUndefined();
  });
});
