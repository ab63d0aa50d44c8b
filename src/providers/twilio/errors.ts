import type { AxiosError } from "axios";
import { maskPhone } from "../../observability/logger";

/**
 * How a Twilio REST answer decides a code send's fate.
 *
 * Twilio's 2010-04-01 API answers errors with JSON `{"code": 21211, "message": "…", "more_info":
 * "https://www.twilio.com/docs/errors/21211", "status": 400}` (twilio/twilio-node src/base/RestException.ts reads
 * exactly `code`, `message`, `more_info`, `status`, `details`; https://www.twilio.com/docs/usage/twilios-response).
 * Success on create is `201 Created` with the resource JSON.
 *
 * The rule (ours): HTTP 429, 408, 5xx and network errors are transient (retry later or fall back); any other 4xx is
 * permanent and carries Twilio's `code`. The table below only names the codes we expect on these two endpoints
 * (https://www.twilio.com/docs/api/errors/<code>), for messages and logs; it does not change the class.
 */
export const TWILIO_ERROR_MEANINGS: ReadonlyMap<number, string> = new Map([
  [20003, "authentication failed: check TWILIO_ACCOUNT_SID / TWILIO_AUTH_TOKEN"],
  [20404, "resource not found (wrong account SID?)"],
  [20429, "too many requests"],
  [21211, "invalid 'To' phone number"],
  [21212, "invalid 'From' phone number"],
  [21408, "permission to send to this region/country is not enabled (geo permissions)"],
  [21606, "the 'From' number cannot send SMS"],
  [21608, "trial account: the 'To' number is not verified"],
  [21610, "the recipient has unsubscribed (replied STOP) from this sender"],
  [21612, "the 'To' number cannot be reached from this 'From' number"],
  [21614, "the 'To' number is not a mobile number"],
  [21215, "geo permissions do not allow calling this number"],
  [21219, "trial account: the 'To' number is not verified"],
]);

export interface TwilioFailure {
  ok: false;
  transient: boolean;
  /** Twilio's numeric code as a string ("21211"), `http_<status>` without one, or the Node network code */
  errorCode?: string;
  message: string;
  httpStatus?: number;
}

/** Twilio's messages may quote the numbers ("The 'To' number +15551234567 is not…"): mask them before they travel. */
export function maskNumbersInText(text: string): string {
  return text.replace(/\+?\d[\d\s().-]{5,}\d/g, (m) => maskPhone(m.replace(/[\s().-]/g, "")) ?? "");
}

export function isTransientStatus(httpStatus: number): boolean {
  return httpStatus === 429 || httpStatus === 408 || httpStatus >= 500;
}

export function failureFromTwilioResponse(httpStatus: number, data: unknown): TwilioFailure {
  const body = (data && typeof data === "object" ? data : {}) as { code?: unknown; message?: unknown };
  const code = typeof body.code === "number" ? body.code : typeof body.code === "string" && /^\d+$/.test(body.code) ? Number(body.code) : undefined;
  const twilioMessage = typeof body.message === "string" ? maskNumbersInText(body.message).slice(0, 300) : undefined;
  const meaning = code !== undefined ? TWILIO_ERROR_MEANINGS.get(code) : undefined;
  const message = [`Twilio HTTP ${httpStatus}${code !== undefined ? ` error ${code}` : ""}`, meaning, twilioMessage].filter(Boolean).join(": ");
  return {
    ok: false,
    transient: isTransientStatus(httpStatus),
    errorCode: code !== undefined ? String(code) : `http_${httpStatus}`,
    message,
    httpStatus,
  };
}

/**
 * No HTTP answer (refused, DNS, TLS, timeout, reset). Transient: the send may be retried or the next channel
 * tried. After a timeout Twilio may already have accepted it, so a retry can deliver the same code twice (the
 * same code, so harmless to the user; said in the message for the logs).
 */
export function failureFromNetworkError(err: unknown): TwilioFailure {
  const e = err as AxiosError & { request?: { writableFinished?: boolean } };
  const code = typeof e?.code === "string" ? e.code : "EUNKNOWN";
  const mayHaveArrived = e?.request?.writableFinished === true && code !== "ECONNREFUSED";
  return {
    ok: false,
    transient: true,
    errorCode: code,
    message: mayHaveArrived ? `no answer from Twilio (${code}); it may have accepted the request` : `could not reach Twilio (${code})`,
  };
}
