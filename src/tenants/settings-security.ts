import type { TenantSettings } from "./settings";

/**
 * The settings that guard something (codes, numbers, money, the network): a tenant admin key changing one of them
 * is held for step-up (src/tenants/step-up.ts), like the other security-sensitive changes. Most count as a
 * security change whichever way they move (a test number, a limit, the country policy, the HTTP allow-list); a
 * few only when they move the weak way (shorter codes, longer-lived codes, no "never share" warning, a shorter
 * audit trail), so tightening them stays immediate.
 */
type Rule = { path: string; get: (s: TenantSettings) => unknown; weaker?: (before: never, after: never) => boolean };

const any = (path: string, get: (s: TenantSettings) => unknown): Rule => ({ path, get });
const lower = (path: string, get: (s: TenantSettings) => number): Rule => ({ path, get, weaker: ((a: number, b: number) => b < a) as Rule["weaker"] });
const higher = (path: string, get: (s: TenantSettings) => number): Rule => ({ path, get, weaker: ((a: number, b: number) => b > a) as Rule["weaker"] });
const turnedOff = (path: string, get: (s: TenantSettings) => boolean): Rule => ({ path, get, weaker: ((a: boolean, b: boolean) => a && !b) as Rule["weaker"] });

const RULES: Rule[] = [
  any("otp.testNumbers", (s) => s.otp.testNumbers),
  any("otp.maxAttempts", (s) => s.otp.maxAttempts),
  any("otp.maxSendsPerNumber", (s) => s.otp.maxSendsPerNumber),
  any("otp.sendWindowMinutes", (s) => s.otp.sendWindowMinutes),
  any("otp.resendCooldownsSeconds", (s) => s.otp.resendCooldownsSeconds),
  any("otp.blockMinutesAfterReport", (s) => s.otp.blockMinutesAfterReport),
  any("otp.channels", (s) => s.otp.channels),
  any("otp.channelCosts", (s) => s.otp.channelCosts),
  // which approved template carries a code (step-up codes too): another one could put the code behind a link
  any("otp.templates", (s) => s.otp.templates),
  any("otp.defaultLocale", (s) => s.otp.defaultLocale),
  lower("otp.codeLength", (s) => s.otp.codeLength),
  higher("otp.expiryMinutes", (s) => s.otp.expiryMinutes),
  turnedOff("otp.warnAfterCode", (s) => s.otp.warnAfterCode),
  any("phonePolicy", (s) => s.phonePolicy),
  any("limits", (s) => s.limits),
  any("flows.httpAllowedHosts", (s) => s.flows.httpAllowedHosts),
  any("pin.maxAttempts", (s) => s.pin.maxAttempts),
  any("pin.lockMinutes", (s) => s.pin.lockMinutes),
  any("pin.resetWaitDays", (s) => s.pin.resetWaitDays),
  // which codes also need the customer's PIN: dropping a purpose lets a code alone through again
  any("pin.requireFor", (s) => s.pin.requireFor),
  lower("retention.auditDays", (s) => s.retention.auditDays),
];

/** The security-relevant settings that `next` changes from `current` (empty: the change may apply at once). */
export function securityChanges(current: TenantSettings, next: TenantSettings): string[] {
  const out: string[] = [];
  for (const r of RULES) {
    const a = r.get(current);
    const b = r.get(next);
    if (r.weaker ? (r.weaker as (x: unknown, y: unknown) => boolean)(a, b) : JSON.stringify(a) !== JSON.stringify(b)) out.push(r.path);
  }
  return out;
}
