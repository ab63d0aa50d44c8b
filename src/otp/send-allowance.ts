import type { Logger } from "../observability/logger";
import type { DailyCodes } from "../limits/daily-codes";
import type { TenantSettings } from "../tenants/settings";
import type { LimitName, Limits } from "./limits";
import type { OtpErrorCode } from "./errors";
import { ipLimitKey } from "../shared/ip";

/**
 * What one code sent costs: a place in the tenant's per-minute window, the client IP's hour, the number prefix's
 * ten minutes (SMS pumping), the number's own send window, and the tenant's daily cap. Spent only once the code
 * is really going out (the caller holds the number's create lock and has passed the re-send cool-down), and given
 * back when the code is not sent after all (a later limit refuses, the transaction fails): so a double click or a
 * retry storm costs one code's worth, not one per request (docs/verify-api.md, Abuse limits).
 */
export interface SpentAllowance {
  /** gives every place back (best effort: a Redis error only leaves a count one higher) */
  refund(): Promise<void>;
}

export interface SendAllowanceInput {
  tenantId: string;
  settings: TenantSettings;
  /** E.164 */
  to: string;
  /** the number without its last four digits */
  prefix: string;
  clientIp?: string;
}

type Window = { name: LimitName; key: string; points: number; seconds: number; error?: OtpErrorCode };

export async function spendSendAllowance(deps: { limits: Limits; dailyCodes?: DailyCodes; logger: Logger }, input: SendAllowanceInput): Promise<SpentAllowance> {
  const { limits } = deps;
  const l = input.settings.limits;
  const otp = input.settings.otp;
  const windows: Window[] = [
    { name: "tenant", key: input.tenantId, points: l.tenantPerMinute, seconds: 60 },
    ...(input.clientIp ? [{ name: "ip" as const, key: `${input.tenantId}:${ipLimitKey(input.clientIp)}`, points: l.ipPerHour, seconds: 3600 }] : []),
    { name: "prefix", key: `${input.tenantId}:${input.prefix}`, points: l.prefixPer10Minutes, seconds: 600 },
    { name: "number_sends", key: `${input.tenantId}:${input.to}`, points: otp.maxSendsPerNumber, seconds: otp.sendWindowMinutes * 60, error: "send_limit_reached" },
  ];
  // one round trip's worth of latency for the four windows; the first refusal in this order is the answer
  const results = await Promise.allSettled(windows.map((w) => limits.consume(w.name, w.key, w.points, w.seconds, w.error)));
  const taken = windows.filter((_, i) => results[i]!.status === "fulfilled");
  const giveBack = async (list: Window[]) => {
    await Promise.all(
      list.map((w) => limits.refund(w.name, w.key, w.points, w.seconds).catch((err: Error) => deps.logger.warn({ limit: w.name, err: err.message }, "send allowance not given back"))),
    );
  };
  const refused = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
  if (refused) {
    await giveBack(taken);
    throw refused.reason;
  }
  let daily;
  try {
    daily = await deps.dailyCodes?.consume(input.tenantId, l.codesPerDay);
  } catch (err) {
    await giveBack(taken);
    throw err;
  }
  let refunded = false;
  return {
    refund: async () => {
      if (refunded) return;
      refunded = true;
      await Promise.all([giveBack(taken), deps.dailyCodes?.refund(daily)]);
    },
  };
}
