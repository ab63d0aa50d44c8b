/** The one path Twilio posts message and call statuses to (src/http/provider-status.routes.ts serves it). */
export const TWILIO_STATUS_PATH = "/providers/twilio/status";

/** `{PUBLIC_BASE_URL}/providers/twilio/status`, or undefined when we have no public URL (no callbacks then). */
export function twilioStatusCallbackUrl(publicBaseUrl: string | undefined): string | undefined {
  if (!publicBaseUrl) return undefined;
  return `${publicBaseUrl.replace(/\/+$/, "")}${TWILIO_STATUS_PATH}`;
}
