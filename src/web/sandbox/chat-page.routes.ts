import path from "node:path";
import express, { Router } from "express";
import { pageSecurity } from "../security";

const ASSETS = path.join(__dirname, "assets");

/**
 * The sandbox chat page (`/sandbox`): be the customer on a phone-like WhatsApp chat. Static HTML, CSS and one
 * script from this folder (no build step, nothing from a CDN); the page talks to the sandbox's control API
 * (`/sandbox/api`) and follows it live over server-sent events (`/sandbox/api/events`).
 */
export function chatPageRoutes(): Router {
  const router = Router();
  const security = pageSecurity();
  router.get(["/sandbox", "/sandbox/"], security, (_req, res) => {
    res.setHeader("Cache-Control", "no-cache");
    res.sendFile(path.join(ASSETS, "chat.html"));
  });
  router.use("/sandbox/assets", security, express.static(ASSETS, { index: false, fallthrough: false, maxAge: 0 }));
  return router;
}
