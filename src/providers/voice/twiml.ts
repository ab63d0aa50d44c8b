import type { VoiceScript } from "../sms/texts";

/**
 * Renders a voice script as TwiML for the Calls API `Twiml` parameter:
 * `<Response><Say language="…" voice="…">…</Say><Pause length="1"/>…</Response>`.
 * <Say> speaks its text in the given language and voice; <Pause length="N"/> waits N seconds
 * (https://www.twilio.com/docs/voice/twiml/say, https://www.twilio.com/docs/voice/twiml/pause).
 * Every text and attribute is XML-escaped, so a brand like "A&B <Shop>" cannot break or inject markup.
 */
export function xmlEscape(value: string): string {
  return value.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;" })[c] as string);
}

export function renderTwiml(script: VoiceScript): string {
  const attrs = `language="${xmlEscape(script.language)}" voice="${xmlEscape(script.voice)}"`;
  const body = script.steps
    .map((step) => ("say" in step ? `<Say ${attrs}>${xmlEscape(step.say)}</Say>` : `<Pause length="${Math.max(1, Math.round(step.pause))}"/>`))
    .join("");
  return `<Response>${body}</Response>`;
}
