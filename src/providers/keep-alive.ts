import http from "node:http";
import https from "node:https";

/**
 * An idle keep-alive socket is closed by us this long after its last answer at the latest, and a second before the
 * server's own announced limit (`Keep-Alive: timeout=N`) when it sends one. Without a socket timeout Node's agent
 * ignores that announcement and keeps idle sockets until the server closes them; a request written onto a socket at
 * the moment the server closes it ends in ECONNRESET after it left, an `unknown` send outcome that is retried and may
 * repeat the message (seen once in 10,000 sends in the scale-out test).
 */
export const IDLE_SOCKET_TIMEOUT_MS = 30_000;

export interface KeepAliveAgents {
  httpAgent: http.Agent;
  httpsAgent: https.Agent;
  /** frees the sockets (shutdown, tests) */
  destroy(): void;
}

/** The keep-alive agents of an outgoing API client (the Cloud API, Twilio). */
export function keepAliveAgents(opts: { maxSockets: number; maxFreeSockets: number }): KeepAliveAgents {
  const options = { keepAlive: true, keepAliveMsecs: 10_000, timeout: IDLE_SOCKET_TIMEOUT_MS, ...opts };
  const httpAgent = new http.Agent(options);
  const httpsAgent = new https.Agent(options);
  return {
    httpAgent,
    httpsAgent,
    destroy() {
      httpAgent.destroy();
      httpsAgent.destroy();
    },
  };
}
