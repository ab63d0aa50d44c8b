import axios, { type AxiosInstance } from "axios";
import { keepAliveAgents, type KeepAliveAgents } from "../keep-alive";
import { failureFromNetworkError, failureFromTwilioResponse, type TwilioFailure } from "./errors";

/**
 * The slice of Twilio's 2010-04-01 REST API we use: create a Message or a Call.
 *
 *   POST {base}/2010-04-01/Accounts/{AccountSid}/Messages.json   (https://www.twilio.com/docs/messaging/api/message-resource)
 *   POST {base}/2010-04-01/Accounts/{AccountSid}/Calls.json      (https://www.twilio.com/docs/voice/api/call-resource)
 *
 * Parameters are form-encoded (`application/x-www-form-urlencoded`, PascalCase names: To, From, Body, Twiml,
 * StatusCallback); HTTP basic auth with the Account SID as user and the Auth Token as password; the `.json`
 * suffix asks for JSON (the 2010 API defaults to XML, https://www.twilio.com/docs/usage/twilios-response).
 * A created resource comes back as `201` with `sid` (SM…/CA…, 34 characters) and `status` ("queued").
 *
 * Never throws for HTTP or network errors; never logs or returns the token or the parameters.
 */
export interface TwilioClientOptions {
  accountSid: string;
  authToken: string;
  /** https://api.twilio.com, or a local stand-in */
  baseUrl: string;
  timeoutMs?: number;
  maxSockets?: number;
}

export type TwilioCreateResult = { ok: true; sid: string; status?: string; httpStatus: number } | TwilioFailure;

export class TwilioRestClient {
  readonly accountSid: string;
  readonly baseUrl: string;
  private readonly http: AxiosInstance;
  private readonly agents: KeepAliveAgents;

  constructor(opts: TwilioClientOptions) {
    this.accountSid = opts.accountSid;
    this.baseUrl = opts.baseUrl.replace(/\/+$/, "");
    const maxSockets = opts.maxSockets ?? 64;
    this.agents = keepAliveAgents({ maxSockets, maxFreeSockets: 16 });
    this.http = axios.create({
      baseURL: this.baseUrl,
      timeout: opts.timeoutMs ?? 10_000,
      httpAgent: this.agents.httpAgent,
      httpsAgent: this.agents.httpsAgent,
      auth: { username: opts.accountSid, password: opts.authToken },
      headers: { "Content-Type": "application/x-www-form-urlencoded", Accept: "application/json" },
      validateStatus: () => true, // every HTTP answer is a value
      maxRedirects: 0,
      proxy: false,
      transitional: { clarifyTimeoutError: true, silentJSONParsing: true, forcedJSONParsing: true },
    });
  }

  resourceUrl(resource: "Messages" | "Calls"): string {
    return `${this.baseUrl}${this.resourcePath(resource)}`;
  }

  /** Creates a Message or a Call from form parameters. */
  async create(resource: "Messages" | "Calls", params: URLSearchParams): Promise<TwilioCreateResult> {
    try {
      const res = await this.http.post(this.resourcePath(resource), params.toString());
      if (res.status >= 200 && res.status < 300) {
        const data = res.data as { sid?: unknown; status?: unknown } | undefined;
        if (typeof data?.sid !== "string" || data.sid === "") {
          return { ok: false, transient: true, errorCode: `http_${res.status}`, message: `Twilio answered ${res.status} without a sid`, httpStatus: res.status };
        }
        return { ok: true, sid: data.sid, status: typeof data.status === "string" ? data.status : undefined, httpStatus: res.status };
      }
      return failureFromTwilioResponse(res.status, res.data);
    } catch (err) {
      return failureFromNetworkError(err);
    }
  }

  /** Frees the keep-alive sockets (shutdown and tests). */
  close(): void {
    this.agents.destroy();
  }

  private resourcePath(resource: "Messages" | "Calls"): string {
    return `/2010-04-01/Accounts/${encodeURIComponent(this.accountSid)}/${resource}.json`;
  }
}
