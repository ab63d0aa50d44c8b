import type { AccountField, AccountUpdateItem } from "../ingest/envelope";
import type { Logger } from "../observability/logger";
import type { TenantDirectory, TenantRecord } from "./tenant-directory";

/**
 * What to do with one account-level webhook update for one tenant of the account. Handlers run in the status
 * worker and may run again for the same update (job retries, Meta's redeliveries): they must be idempotent, e.g.
 * act only when the stored state actually changes. The returned word is the job's result (for logs and tests).
 */
export type AccountUpdateHandler = (tenant: TenantRecord, value: Record<string, unknown>, item: AccountUpdateItem) => Promise<string>;

/**
 * Routes account-level webhook updates (Meta names only the WhatsApp Business Account, the entry's id) to every
 * tenant of that account, through the handler registered for the webhook field. An update for an account no
 * tenant belongs to is logged and dropped, like a message for an unknown number.
 */
export class AccountUpdates {
  private readonly handlers = new Map<AccountField, AccountUpdateHandler>();

  constructor(
    private readonly tenants: Pick<TenantDirectory, "byWabaId">,
    private readonly logger: Logger,
  ) {}

  on(field: AccountField, handler: AccountUpdateHandler): this {
    this.handlers.set(field, handler);
    return this;
  }

  handle = async (item: AccountUpdateItem): Promise<string> => {
    const handler = this.handlers.get(item.field);
    if (!handler) {
      this.logger.info({ field: item.field, wabaId: item.wabaId }, "account update of a field we do not act on");
      return "ignored";
    }
    const tenants = await this.tenants.byWabaId(item.wabaId);
    if (tenants.length === 0) {
      this.logger.warn({ field: item.field, wabaId: item.wabaId }, "account update for a WABA no tenant belongs to: dropped");
      return "unknown_tenant";
    }
    const results: string[] = [];
    for (const t of tenants) results.push(await handler(t, item.value, item));
    return results.join(",");
  };
}
