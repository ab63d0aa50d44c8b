import type { EventEmitter } from "node:events";
import type express from "express";
import type { Logger } from "../observability/logger";
import type { Clock } from "../shared/clock";

/** One business phone number the sandbox plays Meta for. */
export interface SandboxPhoneNumber {
  phoneNumberId: string;
  displayPhoneNumber: string;
  accessToken: string;
  /** WABA id used as `entry[].id` in webhooks; a stable fake is derived from the phone number id when absent. */
  wabaId?: string;
}

export type TemplateCategory = "AUTHENTICATION" | "UTILITY" | "MARKETING";

/** An approved template, as the sandbox knows it. `{{1}}`-style positional variables in `body`. */
export interface TemplateDef {
  name: string;
  language: string;
  category: TemplateCategory;
  /** body text with positional placeholders, e.g. "{{1}} is your verification code." */
  body: string;
  footer?: string;
  /** buttons in index order; a url button with `hasParameter` needs one parameter at send time (copy code = URL) */
  buttons?: { type: "url" | "quick_reply"; text: string; hasParameter?: boolean }[];
}

export interface SandboxOptions {
  appSecret: string;
  webhookUrl?: string;
  phoneNumbers: SandboxPhoneNumber[];
  templates?: TemplateDef[];
  statusDelaysMs?: { sent?: number; delivered?: number; read?: number };
  autoRead?: boolean;
  logger?: Logger;
  webhookRetry?: { attempts: number; baseDelayMs: number };
  /** a keep-alive agent for the webhooks it posts (the benchmark's); default: a new connection per webhook */
  webhookAgent?: import("node:http").Agent;
  /** "now" for the 24-hour customer service window (tests move it instead of sleeping) */
  clock?: Clock;
}

export interface InjectInput {
  phoneNumberId?: string;
  from?: string;
  userId?: string;
  profileName?: string;
  username?: string;
  message?: Record<string, unknown>;
  text?: string;
  id?: string;
  timestamp?: number;
  context?: unknown;
}

/**
 * Faults of the next sends: `rate_limit` 130429, `pair_rate` 131056, `server_error` 131000 (HTTP 500),
 * `service_unavailable` 131016 (HTTP 503), `too_many_requests` HTTP 429 (Graph code 4), each with a `Retry-After`
 * header when `retryAfterSeconds` is set; `undeliverable` (accepted, then a failed status); `token_expired` 190;
 * `timeout`: the send is accepted and recorded, and the answer held `timeoutMs` (default 15 s), so a client with a
 * shorter timeout does not know the outcome of a send that did happen.
 */
export type FaultType = "rate_limit" | "pair_rate" | "undeliverable" | "server_error" | "service_unavailable" | "too_many_requests" | "timeout" | "token_expired";

export interface Fault {
  type: FaultType;
  count?: number;
  to?: string;
  timeoutMs?: number;
  retryAfterSeconds?: number;
}

export type MessageStatusName = "accepted" | "sent" | "delivered" | "read" | "failed";

export interface SandboxStatusEvent {
  status: Exclude<MessageStatusName, "accepted">;
  at: number;
  errorCode?: number;
}

export interface SandboxButton {
  title: string;
  /** an interactive reply button: tapping it sends this id back */
  replyId?: string;
  /** a copy-code button: the text it copies */
  copy?: string;
}

/** One message of a conversation, either direction. */
export interface SandboxMessage {
  wamid: string;
  direction: "inbound" | "outbound";
  phoneNumberId: string;
  /** customer phone digits, when known */
  customer?: string;
  /** customer BSUID, when known */
  userId?: string;
  type: string;
  /** what a person would see: the text, a button label, the rendered template */
  text: string;
  /** the type-specific object as sent / received */
  payload: Record<string, unknown>;
  /** buttons a person would see (a template's "Copy code", interactive reply buttons), for the chat page */
  buttons?: SandboxButton[];
  at: number;
  status: MessageStatusName;
  statuses: SandboxStatusEvent[];
}

export interface RecordedRequest {
  method: string;
  path: string;
  body: unknown;
  at: number;
  /** the bearer token, masked (first 4 characters and length only) */
  authorization: string;
  responseStatus: number;
  errorCode?: number;
  /** Meta's error message, when the request was refused */
  errorMessage?: string;
  wamid?: string;
  /** the caller's X-Request-Id header, when it sent one (the bot sends the id of the request behind the message) */
  requestId?: string;
}

export interface RecordedWebhook {
  /** the exact bytes posted (Meta's escaped-unicode JSON) */
  body: string;
  signature: string;
  attempt: number;
  /** the bot's HTTP status; 0 when the connection failed */
  responseStatus: number;
  at: number;
  kind: "message" | "status" | "raw";
}

export interface Sandbox {
  app: express.Express;
  listen(port?: number, host?: string): Promise<{ url: string; close(): Promise<void> }>;
  setWebhookUrl(url: string): void;
  injectInbound(input: InjectInput): Promise<{ wamid: string; status: number }>;
  injectBatch(inputs: InjectInput[]): Promise<{ wamids: string[]; status: number }>;
  postWebhook(envelope: unknown): Promise<number>;
  addFault(f: Fault): void;
  clearFaults(): void;
  conversation(customer: string, phoneNumberId?: string): SandboxMessage[];
  requests(): RecordedRequest[];
  webhooks(): RecordedWebhook[];
  events: EventEmitter;
  close(): Promise<void>;
  /** plays Meta for one more business number (or updates its token): the demo registers every tenant */
  addPhoneNumber(phone: SandboxPhoneNumber): void;
}
