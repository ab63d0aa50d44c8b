import request from "supertest";
import type { Express } from "express";
import { signBody } from "../../src/ingest/verify-signature";

/** POSTs a body to /webhook signed as Meta signs it (over the exact bytes sent). */
export function postSigned(app: Express | string, body: unknown, appSecret: string) {
  // supertest would JSON-encode a Buffer: send the exact text that was signed
  const raw = Buffer.isBuffer(body) ? body.toString("utf8") : typeof body === "string" ? body : JSON.stringify(body);
  return request(app).post("/webhook").set("content-type", "application/json").set("x-hub-signature-256", signBody(raw, appSecret)).send(raw);
}
