import http from "node:http";
import { randomBytes } from "node:crypto";
import type { AddressInfo } from "node:net";
import axios from "axios";
import express, { type Express, type Request, type Response } from "express";
import { maskPhone, type Logger } from "../../observability/logger";
import { computeTwilioSignature } from "../../providers/twilio/signature";
import { elementsOf, parseXml, XmlError } from "./xml";

/**
 * A local stand-in for the two Twilio REST endpoints the code channels use, for tests and the demo:
 *
 *   POST /2010-04-01/Accounts/{AccountSid}/Messages.json   To, From, Body [, StatusCallback]
 *   POST /2010-04-01/Accounts/{AccountSid}/Calls.json      To, From, Twiml (or Url) [, StatusCallback]
 *
 * Like Twilio it checks HTTP basic auth (Account SID : Auth Token) and answers a bad one with
 * 401 `{"code":20003,"message":"Authenticate","more_info":"https://www.twilio.com/docs/errors/20003","status":401}`,
 * validates the form, answers errors as `{code, message, more_info, status}` and a created resource as
 * `201` + Twilio's resource JSON (sid SM…/CA… of 34 characters, status "queued", RFC 2822 dates with "+0000";
 * shapes from https://www.twilio.com/docs/messaging/api/message-resource and
 * https://www.twilio.com/docs/voice/api/call-resource).
 *
 * With a StatusCallback it later posts the status like Twilio, form-encoded and signed with X-Twilio-Signature
 * (providers/twilio/signature.ts): messages `sent` then `delivered` (or `failed`/`undelivered` with ErrorCode when
 * told to, see failNextDelivery); calls one final event (`completed`, or busy/no-answer/failed/canceled), which is
 * what Twilio sends when no StatusCallbackEvent is given. Twilio does not post the initial `queued`
 * (https://www.twilio.com/docs/messaging/guides/outbound-message-status-in-status-callbacks) and does not retry
 * status callbacks; neither does the stand-in.
 *
 * Validation error codes follow Twilio's error dictionary (https://www.twilio.com/docs/api/errors): 21211 invalid
 * To, 21212 invalid From, 21602 body required, 21603 From required, 21604 To required, 21617 body over 1,600
 * characters, 32018 Twiml over 4,000 characters; 21205 (no Url/Twiml) and 21609 (bad StatusCallback) are the
 * stand-in's picks from the same dictionary. Where Twilio would only fail later (malformed TwiML, reported when
 * the call runs as 12100 "Document parse failure"), the stand-in refuses at once so tests see it.
 */
export interface TwilioStandinOptions {
  accountSid: string;
  authToken: string;
  /** delay before each status callback (default 20 ms) */
  statusCallbackDelayMs?: number;
  logger?: Logger;
}

export interface StandinRequest {
  resource: "Messages" | "Calls";
  accountSid: string;
  authorization?: string;
  contentType?: string;
  /** the raw form body as received */
  rawBody: string;
  /** the form parameters (last value wins) */
  form: Record<string, string>;
  responseStatus: number;
}

export interface StandinMessage {
  sid: string;
  to: string;
  from: string;
  body: string;
  statusCallback?: string;
  status: string;
  errorCode?: number;
  numSegments: number;
  dateCreated: Date;
}

export interface StandinCall {
  sid: string;
  to: string;
  from: string;
  twiml?: string;
  url?: string;
  statusCallback?: string;
  status: string;
  errorCode?: number;
  dateCreated: Date;
}

export interface StandinCallback {
  url: string;
  params: Record<string, string>;
  signature: string;
  /** our endpoint's answer (0: no answer) */
  responseStatus: number;
  at: Date;
}

export interface FailNextRequest {
  status: number;
  code: number;
  message: string;
  /** how many of the next create requests fail (default 1) */
  count?: number;
}

export type MessageFailure = "failed" | "undelivered";
export type CallFailure = "busy" | "no-answer" | "failed" | "canceled";

export interface FailNextDelivery {
  /** the final status of the next message(s) / call(s) created with a StatusCallback */
  status: MessageFailure | CallFailure;
  /** ErrorCode to post (messages default: 30003 undelivered, 30008 failed; calls: none) */
  errorCode?: number;
  count?: number;
}

export interface TwilioStandin {
  app: Express;
  listen(port?: number, host?: string): Promise<{ url: string; close: () => Promise<void> }>;
  messages(): StandinMessage[];
  calls(): StandinCall[];
  requests(): StandinRequest[];
  callbacks(): StandinCallback[];
  /** the next create request(s) answer with this Twilio error */
  failNext(f: FailNextRequest): void;
  /** the next message(s)/call(s) end in failure in their status callbacks */
  failNextDelivery(f: FailNextDelivery): void;
  /** resolves when every scheduled status callback has been posted */
  idle(): Promise<void>;
  close(): Promise<void>;
}

const API_VERSION = "2010-04-01";
const E164 = /^\+[1-9]\d{1,14}$/;
/** Alphanumeric sender ids: up to 11 characters, letters, digits and spaces, at least one letter. */
const ALPHA_SENDER = /^(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}$/;

export function newTwilioSid(prefix: "SM" | "CA" | "AC"): string {
  return prefix + randomBytes(16).toString("hex");
}

/** Twilio's dates: RFC 2822 in GMT, written "+0000" ("Tue, 31 Aug 2010 20:36:28 +0000"). */
export function rfc2822(d: Date): string {
  return d.toUTCString().replace(/GMT$/, "+0000");
}

function twilioError(status: number, code: number, message: string) {
  return { code, message, more_info: `https://www.twilio.com/docs/errors/${code}`, status };
}

/** GSM-7 basic set (approximation: the extension table is counted as single characters). */
const GSM7 = /^[@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !"#¤%&'()*+,\-./0-9:;<=>?¡A-ZÄÖÑÜ§¿a-zäöñüà^{}\\[~\]|€]*$/;

export function smsSegments(body: string): number {
  const gsm = GSM7.test(body);
  const len = gsm ? body.length : Array.from(body).length;
  const single = gsm ? 160 : 70;
  const multi = gsm ? 153 : 67;
  if (len <= single) return 1;
  return Math.ceil(len / multi);
}

function isHttpUrl(v: string): boolean {
  try {
    const u = new URL(v);
    return (u.protocol === "http:" || u.protocol === "https:") && !u.hostname.includes("_");
  } catch {
    return false;
  }
}

export function createTwilioStandin(opts: TwilioStandinOptions): TwilioStandin {
  const delay = opts.statusCallbackDelayMs ?? 20;
  const messages: StandinMessage[] = [];
  const calls: StandinCall[] = [];
  const requests: StandinRequest[] = [];
  const callbacks: StandinCallback[] = [];
  const failures: FailNextRequest[] = [];
  const deliveryFailures: FailNextDelivery[] = [];
  /** scheduled callbacks and how to settle them if close() cancels them first */
  const timers = new Map<NodeJS.Timeout, () => void>();
  const pending = new Set<Promise<void>>();
  const servers = new Set<http.Server>();
  const callbackAgent = new http.Agent({ keepAlive: false });
  let closed = false;

  const app = express();
  app.disable("x-powered-by");

  const expectedAuth = `Basic ${Buffer.from(`${opts.accountSid}:${opts.authToken}`).toString("base64")}`;

  const handle = (resource: "Messages" | "Calls") => (req: Request, res: Response) => {
    const raw = Buffer.isBuffer(req.body) ? req.body.toString("utf8") : "";
    const form: Record<string, string> = {};
    for (const [k, v] of new URLSearchParams(raw)) form[k] = v;
    const accountSid = String(req.params.accountSid ?? "");
    const answer = (status: number, body: unknown) => {
      requests.push({ resource, accountSid, authorization: req.headers.authorization, contentType: req.headers["content-type"], rawBody: raw, form, responseStatus: status });
      if (status === 401) res.setHeader("WWW-Authenticate", 'Basic realm="Twilio API"');
      res.status(status).json(body);
    };

    if (req.headers.authorization !== expectedAuth) return answer(401, twilioError(401, 20003, "Authenticate"));
    if (accountSid !== opts.accountSid) {
      return answer(404, twilioError(404, 20404, `The requested resource /${API_VERSION}/Accounts/${accountSid}/${resource}.json was not found`));
    }
    const forced = failures[0];
    if (forced) {
      forced.count = (forced.count ?? 1) - 1;
      if (forced.count <= 0) failures.shift();
      return answer(forced.status, twilioError(forced.status, forced.code, forced.message));
    }

    const to = form.To;
    const from = form.From;
    const statusCallback = form.StatusCallback;
    if (!to) return answer(400, twilioError(400, 21604, "A 'To' phone number is required."));
    if (!E164.test(to)) return answer(400, twilioError(400, 21211, `The 'To' number ${to} is not a valid phone number.`));
    if (!from) return answer(400, twilioError(400, 21603, "A 'From' phone number is required."));
    if (!E164.test(from) && !(resource === "Messages" && ALPHA_SENDER.test(from))) {
      return answer(400, twilioError(400, 21212, `The 'From' number ${from} is not a valid phone number, shortcode, or alphanumeric sender ID.`));
    }
    if (statusCallback !== undefined && !isHttpUrl(statusCallback)) {
      return answer(400, twilioError(400, 21609, "Invalid StatusCallback url"));
    }
    const now = new Date();
    const uriBase = `/${API_VERSION}/Accounts/${opts.accountSid}/${resource}`;

    if (resource === "Messages") {
      const body = form.Body;
      if (!body) return answer(400, twilioError(400, 21602, "Message body is required."));
      if (body.length > 1600) return answer(400, twilioError(400, 21617, "The concatenated message body exceeds the 1600 character limit."));
      const msg: StandinMessage = { sid: newTwilioSid("SM"), to, from, body, statusCallback, status: "queued", numSegments: smsSegments(body), dateCreated: now };
      messages.push(msg);
      opts.logger?.info({ sid: msg.sid, to: maskPhone(to) }, "twilio stand-in: message queued");
      answer(201, {
        account_sid: opts.accountSid,
        api_version: API_VERSION,
        body,
        date_created: rfc2822(now),
        date_sent: null,
        date_updated: rfc2822(now),
        direction: "outbound-api",
        error_code: null,
        error_message: null,
        from,
        messaging_service_sid: null,
        num_media: "0",
        num_segments: String(msg.numSegments),
        price: null,
        price_unit: "USD",
        sid: msg.sid,
        status: "queued",
        subresource_uris: { media: `${uriBase}/${msg.sid}/Media.json` },
        to,
        uri: `${uriBase}/${msg.sid}.json`,
      });
      if (statusCallback) scheduleMessageStatuses(msg, statusCallback);
      return;
    }

    const twiml = form.Twiml;
    const url = form.Url;
    if (!twiml && !url) return answer(400, twilioError(400, 21205, "Either Url, Twiml or ApplicationSid is required."));
    if (twiml !== undefined) {
      if (twiml.length > 4000) return answer(400, twilioError(400, 32018, "Twiml size exceeded maximum allowed value of 4000 characters"));
      try {
        const root = parseXml(twiml);
        if (root.name !== "Response") throw new XmlError("the root element must be <Response>");
        elementsOf(root);
      } catch (e) {
        return answer(400, twilioError(400, 12100, `Document parse failure: ${e instanceof Error ? e.message : String(e)}`));
      }
    }
    const call: StandinCall = { sid: newTwilioSid("CA"), to, from, twiml, url, statusCallback, status: "queued", dateCreated: now };
    calls.push(call);
    opts.logger?.info({ sid: call.sid, to: maskPhone(to) }, "twilio stand-in: call queued");
    answer(201, {
      account_sid: opts.accountSid,
      answered_by: null,
      api_version: API_VERSION,
      caller_name: null,
      date_created: rfc2822(now),
      date_updated: rfc2822(now),
      direction: "outbound-api",
      duration: null,
      end_time: null,
      forwarded_from: null,
      from,
      from_formatted: from,
      group_sid: null,
      parent_call_sid: null,
      phone_number_sid: null,
      price: null,
      price_unit: "USD",
      queue_time: "0",
      sid: call.sid,
      start_time: null,
      status: "queued",
      subresource_uris: { notifications: `${uriBase}/${call.sid}/Notifications.json`, recordings: `${uriBase}/${call.sid}/Recordings.json` },
      to,
      to_formatted: to,
      trunk_sid: null,
      uri: `${uriBase}/${call.sid}.json`,
    });
    if (statusCallback) scheduleCallStatus(call, statusCallback);
  };

  const raw = express.raw({ type: () => true, limit: "1mb" });
  app.post("/2010-04-01/Accounts/:accountSid/Messages.json", raw, handle("Messages"));
  app.post("/2010-04-01/Accounts/:accountSid/Calls.json", raw, handle("Calls"));

  function takeDeliveryFailure(kind: "message" | "call"): FailNextDelivery | undefined {
    const idx = deliveryFailures.findIndex((f) => (kind === "message" ? f.status === "failed" || f.status === "undelivered" : f.status !== "undelivered"));
    if (idx < 0) return undefined;
    const f = deliveryFailures[idx] as FailNextDelivery;
    f.count = (f.count ?? 1) - 1;
    if (f.count <= 0) deliveryFailures.splice(idx, 1);
    return f;
  }

  /** Runs `fn` after `ms`; tracked so idle() can wait for it and close() can cancel it. */
  function after(ms: number, fn: () => Promise<void>): void {
    let settle!: () => void;
    const done = new Promise<void>((resolve) => (settle = resolve));
    const timer = setTimeout(() => {
      timers.delete(timer);
      fn().finally(settle);
    }, ms);
    timers.set(timer, settle);
    const tracked: Promise<void> = done.finally(() => pending.delete(tracked));
    pending.add(tracked);
  }

  async function post(url: string, params: Record<string, string>): Promise<void> {
    if (closed) return;
    const signature = computeTwilioSignature(opts.authToken, url, params);
    let responseStatus = 0;
    try {
      const res = await axios.post(url, new URLSearchParams(params).toString(), {
        headers: { "Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature, "User-Agent": "TwilioProxy/1.1" },
        httpAgent: callbackAgent,
        timeout: 5_000,
        validateStatus: () => true,
        maxRedirects: 0,
        proxy: false,
      });
      responseStatus = res.status;
    } catch {
      responseStatus = 0;
    }
    callbacks.push({ url, params, signature, responseStatus, at: new Date() });
  }

  function scheduleMessageStatuses(msg: StandinMessage, url: string): void {
    const failure = takeDeliveryFailure("message");
    const base = () => ({ AccountSid: opts.accountSid, ApiVersion: API_VERSION, From: msg.from, MessageSid: msg.sid, SmsSid: msg.sid, To: msg.to });
    const send = (status: string, errorCode?: number) => {
      msg.status = status;
      if (errorCode !== undefined) msg.errorCode = errorCode;
      return post(url, { ...base(), MessageStatus: status, SmsStatus: status, ...(errorCode !== undefined ? { ErrorCode: String(errorCode) } : {}) });
    };
    if (failure?.status === "failed") {
      // failed: Twilio could not send it at all, no `sent` first
      after(delay, () => send("failed", failure.errorCode ?? 30008));
      return;
    }
    after(delay, async () => {
      await send("sent");
      if (closed) return;
      after(delay, () => (failure ? send("undelivered", failure.errorCode ?? 30003) : send("delivered")));
    });
  }

  function scheduleCallStatus(call: StandinCall, url: string): void {
    const failure = takeDeliveryFailure("call");
    const status = failure?.status ?? "completed";
    after(delay, () => {
      call.status = status;
      if (failure?.errorCode !== undefined) call.errorCode = failure.errorCode;
      return post(url, {
        AccountSid: opts.accountSid,
        ApiVersion: API_VERSION,
        CallSid: call.sid,
        CallStatus: status,
        Called: call.to,
        Caller: call.from,
        Direction: "outbound-api",
        From: call.from,
        To: call.to,
        CallbackSource: "call-progress-events",
        SequenceNumber: "0",
        Timestamp: rfc2822(new Date()),
        ...(status === "completed" ? { CallDuration: "21" } : {}),
        ...(failure?.errorCode !== undefined ? { ErrorCode: String(failure.errorCode) } : {}),
      });
    });
  }

  async function idle(): Promise<void> {
    while (pending.size > 0) await Promise.all([...pending]);
  }

  return {
    app,
    async listen(port = 0, host = "127.0.0.1") {
      const server = http.createServer(app);
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(port, host, () => resolve());
      });
      servers.add(server);
      const addr = server.address() as AddressInfo;
      const close = () =>
        new Promise<void>((resolve) => {
          if (!servers.delete(server)) return resolve();
          server.close(() => resolve());
          server.closeAllConnections();
        });
      return { url: `http://${host}:${addr.port}`, close };
    },
    messages: () => [...messages],
    calls: () => [...calls],
    requests: () => [...requests],
    callbacks: () => [...callbacks],
    failNext(f) {
      failures.push({ ...f, count: f.count ?? 1 });
    },
    failNextDelivery(f) {
      deliveryFailures.push({ ...f, count: f.count ?? 1 });
    },
    idle,
    async close() {
      closed = true;
      for (const [timer, settle] of timers) {
        clearTimeout(timer);
        settle();
      }
      timers.clear();
      await idle();
      await Promise.all(
        [...servers].map(
          (server) =>
            new Promise<void>((resolve) => {
              servers.delete(server);
              server.close(() => resolve());
              server.closeAllConnections();
            }),
        ),
      );
      callbackAgent.destroy();
    },
  };
}
