import { z } from "zod";
import { digits } from "./ids";
import type { Customer } from "./store";
import type { Fault } from "./types";

export const faultSchema = z.strictObject({
  type: z.enum(["rate_limit", "pair_rate", "undeliverable", "server_error", "service_unavailable", "too_many_requests", "timeout", "token_expired"]),
  count: z.number().int().positive().optional(),
  to: z.string().min(1).optional(),
  timeoutMs: z.number().int().nonnegative().optional(),
  retryAfterSeconds: z.number().int().nonnegative().optional(),
});

/** Faults armed for the next sends; each applies to `count` sends (default 1), optionally only to one customer. */
export class FaultBook {
  private armed: { fault: Fault; remaining: number }[] = [];

  add(fault: Fault): void {
    this.armed.push({ fault: faultSchema.parse(fault), remaining: fault.count ?? 1 });
  }

  clear(): void {
    this.armed = [];
  }

  /** Takes (consumes one use of) the first fault matching this send, if any. */
  take(recipient: string, customer: Customer | undefined, types?: Fault["type"][]): Fault | undefined {
    const entry = this.armed.find(
      ({ fault }) => (!types || types.includes(fault.type)) && (!fault.to || matches(fault.to, recipient, customer)),
    );
    if (!entry) return undefined;
    entry.remaining -= 1;
    if (entry.remaining <= 0) this.armed = this.armed.filter((e) => e !== entry);
    return entry.fault;
  }
}

function matches(target: string, recipient: string, customer: Customer | undefined): boolean {
  if (target === recipient) return true;
  if (customer?.userId && target === customer.userId) return true;
  const d = digits(target);
  return d.length > 0 && (d === digits(recipient) || d === customer?.phone);
}
