import { createBullBoard } from "@bull-board/api";
import { BullMQAdapter } from "@bull-board/api/bullMQAdapter";
import { ExpressAdapter } from "@bull-board/express";
import type { Queue } from "bullmq";
import type { NextFunction, Request, RequestHandler, Response } from "express";

type EntryRoute = Parameters<ExpressAdapter["setEntryRoute"]>[0];

/**
 * bull-board's Express adapter with its page made fit for a strict CSP: the stock page links Google Fonts (nothing
 * may come from a CDN here) and shows an inline-styled placeholder; both are dropped, the rest is served as is.
 */
class SelfHostedExpressAdapter extends ExpressAdapter {
  override setEntryRoute(routeDef: EntryRoute): ExpressAdapter {
    const handler = (_req: Request, res: Response, next: NextFunction) => {
      const { name, params } = routeDef.handler({ basePath: this.basePath, uiConfig: this.uiConfig });
      res.render(name, params, (err: Error | null, html: string) => {
        if (err) return next(err);
        res.type("html").send(
          html
            .replace(/<link[^>]+href="https?:\/\/[^"]*"[^>]*>/g, "")
            .replace(/<div id="root">[\s\S]*?<\/style>\s*<\/div>/, '<div id="root"></div>'),
        );
      });
    };
    for (const method of Array.isArray(routeDef.method) ? routeDef.method : [routeDef.method]) {
      (this.app as unknown as Record<string, (route: unknown, h: RequestHandler) => void>)[method]!(routeDef.route, handler);
    }
    return this;
  }
}

/** The queue dashboard over the project's queues, served under `basePath` (the caller puts authentication in front). */
export function queuesBoard(queues: Record<string, Queue>, basePath: string): RequestHandler {
  const serverAdapter = new SelfHostedExpressAdapter();
  serverAdapter.setBasePath(basePath);
  createBullBoard({
    queues: Object.values(queues).map((q) => new BullMQAdapter(q)),
    // @bull-board/express carries its own copy of @bull-board/api (a patch version apart): same shape, other declarations
    serverAdapter: serverAdapter as unknown as Parameters<typeof createBullBoard>[0]["serverAdapter"],
    options: { uiConfig: { boardTitle: "WhatsApp bot queues" } },
  });
  return serverAdapter.getRouter() as RequestHandler;
}
