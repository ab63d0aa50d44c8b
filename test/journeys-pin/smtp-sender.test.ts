import net from "node:net";
import pino from "pino";
import { SmtpEmailSender } from "../../src/providers/email";

/** The SMTP adapter over the wire, against a minimal SMTP server (EHLO, AUTH, MAIL, RCPT, DATA). */
let server: net.Server;
let port: number;
const received: string[] = [];
let rejectRcpt = false;

beforeAll(async () => {
  server = net.createServer((s) => {
    s.write("220 fake ESMTP\r\n");
    let inData = false;
    let buf = "";
    s.on("data", (d) => {
      buf += d.toString("utf8");
      for (let i = buf.indexOf("\r\n"); i >= 0; i = buf.indexOf("\r\n")) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 2);
        received.push(line);
        if (inData) {
          if (line === ".") {
            inData = false;
            s.write("250 OK queued as X1\r\n");
          }
          continue;
        }
        const cmd = line.slice(0, 4).toUpperCase();
        if (cmd === "EHLO") s.write("250-fake\r\n250 AUTH PLAIN LOGIN\r\n");
        else if (cmd === "AUTH") s.write("235 2.7.0 Authentication successful\r\n");
        else if (cmd === "RCPT") s.write(rejectRcpt ? "550 5.1.1 no such user\r\n" : "250 OK\r\n");
        else if (cmd === "DATA") {
          inData = true;
          s.write("354 go ahead\r\n");
        } else if (cmd === "QUIT") {
          s.write("221 bye\r\n");
          s.end();
        } else s.write("250 OK\r\n");
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  port = (server.address() as net.AddressInfo).port;
});
afterAll(async () => {
  await new Promise((r) => server.close(r));
});

it("sends through SMTP with the URL's credentials, and reports a refused recipient as a value", async () => {
  const lines: string[] = [];
  const logger = pino({ level: "debug" }, { write: (s: string) => void lines.push(s) });
  const smtp = new SmtpEmailSender({ url: `smtp://bot:s3cret@127.0.0.1:${port}`, from: "bot@example.com", logger, timeoutMs: 2_000 });
  try {
    const ok = await smtp.send({ to: "ada@example.com", subject: "Reset your PIN", text: "Open https://x/pin-reset/abc", html: "<p>x</p>" });
    expect(ok).toMatchObject({ ok: true, id: expect.stringMatching(/^<.+>$/) });
    expect(received).toContain("MAIL FROM:<bot@example.com>");
    expect(received).toContain("RCPT TO:<ada@example.com>");
    expect(received.some((l) => /^AUTH (PLAIN|LOGIN)/.test(l))).toBe(true);
    expect(received).toContain("Subject: Reset your PIN");

    rejectRcpt = true;
    const refused = await smtp.send({ to: "nobody@example.com", subject: "s", text: "t" });
    expect(refused.ok).toBe(false);
  } finally {
    smtp.close();
  }
  const log = lines.join("\n");
  expect(log).toContain("a•••@example.com");
  expect(log).not.toMatch(/ada@example\.com|nobody@example\.com|s3cret|pin-reset/);
});
