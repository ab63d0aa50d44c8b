/**
 * Serialises a webhook body the way Meta does: JSON with every non-ASCII character written as a lower-case
 * `\uXXXX` escape ("we generate the signature using an escaped unicode version of the payload, with lowercase hex
 * digits", developers.facebook.com/docs/graph-api/webhooks/getting-started). A bot that re-serialises the parsed
 * body instead of hashing the received bytes fails the signature check on exactly these messages.
 */
export function metaJson(value: unknown): string {
  return JSON.stringify(value).replace(/[\u0080-\uffff]/g, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, "0")}`);
}
