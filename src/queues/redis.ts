import IORedis, { type Redis, type RedisOptions } from "ioredis";

/**
 * Connections the BullMQ way (see docs/architecture.md):
 * - producers (the webhook) fail fast: no offline queue, one retry, a command timeout, so a Redis outage
 *   becomes a 503 for Meta to redeliver instead of a request that hangs;
 * - workers retry for ever (maxRetriesPerRequest: null) and wait for Redis to come back.
 */
export function producerConnection(url: string, extra: RedisOptions = {}): Redis {
  return new IORedis(url, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    commandTimeout: 5_000,
    connectTimeout: 2_000,
    lazyConnect: false,
    ...extra,
  });
}

export function workerConnection(url: string, extra: RedisOptions = {}): Redis {
  return new IORedis(url, { maxRetriesPerRequest: null, enableReadyCheck: true, ...extra });
}
