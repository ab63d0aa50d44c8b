import type { Redis, ChainableCommander } from "ioredis";
import type { Keyring } from "../shared/crypto";

/**
 * Per-contact mailbox: a sorted set of the contact's pending inbound job ids, scored by arrival order. It is
 * written at intake, before the jobs, so a worker can always tell which of a contact's messages come first
 * (see docs/architecture.md, "Per-contact order"). Keys use a keyed hash, never the phone number.
 */
export const MAILBOX_TTL_SECONDS = 7 * 24 * 3600;

export class Mailboxes {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly keyring: Keyring,
  ) {}

  key(phoneNumberId: string, contactKey: string): string {
    return `${this.prefix}:mbox:${this.keyring.hmac("contact-key", phoneNumberId, contactKey).slice(0, 32)}`;
  }

  /** Queues ZADD NX for each (mailbox, jobId, order) into a MULTI. */
  addAll(multi: ChainableCommander, entries: { key: string; jobId: string; order: number }[]): void {
    const touched = new Set<string>();
    for (const e of entries) {
      multi.zadd(e.key, "NX", e.order, e.jobId);
      touched.add(e.key);
    }
    for (const k of touched) multi.expire(k, MAILBOX_TTL_SECONDS);
  }

  /** Members that come before (or are) the given order, oldest first. */
  async upTo(key: string, order: number): Promise<{ jobId: string; order: number }[]> {
    const flat = await this.redis.zrangebyscore(key, "-inf", order, "WITHSCORES");
    const out: { jobId: string; order: number }[] = [];
    for (let i = 0; i < flat.length; i += 2) out.push({ jobId: flat[i]!, order: Number(flat[i + 1]) });
    return out;
  }

  async remove(key: string, jobId: string): Promise<void> {
    await this.redis.zrem(key, jobId);
  }
}
