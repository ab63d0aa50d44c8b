import { AsyncLocalStorage } from "node:async_hooks";

/**
 * The request id of the work in progress, carried across async calls (AsyncLocalStorage): set by the HTTP
 * middleware (src/observability/request-id.ts) for a request, and by the workers for a job whose data carries
 * one. Two things read it:
 * - the logger's mixin (logger.ts): every line written while it is set carries `reqId`, whichever logger wrote it;
 * - `Outbox.dispatch`: the outbound jobs of the replies and codes queued while it is set carry it, so the send
 *   worker logs it and passes it to the Cloud API as `X-Request-Id`.
 * Nothing here touches the database or Redis: the cost is one AsyncLocalStorage lookup.
 */
const storage = new AsyncLocalStorage<{ requestId?: string }>();
const NONE = Object.freeze({});

/** The request id of the current request or job, if any. */
export function currentRequestId(): string | undefined {
  return storage.getStore()?.requestId;
}

/** Runs `fn` with `requestId` as the current request id; with none, `fn` runs with no request id at all. */
export function runWithRequestId<T>(requestId: string | undefined, fn: () => T): T {
  return storage.run(requestId ? { requestId } : NONE, fn);
}
