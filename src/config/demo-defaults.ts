/**
 * Local defaults for `npm run demo` only: a local database and Redis, and fixed, public, insecure secrets so
 * the bot and its Cloud API sandbox agree. Never use these values anywhere else.
 */
export const DEMO_DEFAULTS: Record<string, string> = {
  NODE_ENV: "development",
  DATABASE_URL: "postgresql://postgres@127.0.0.1:5432/wabot_demo",
  REDIS_URL: "redis://127.0.0.1:6379",
  PORT: "3000",
  // loopback only: the demo's admin key and secrets are published (HOST=0.0.0.0 opens it to the network)
  HOST: "127.0.0.1",
  WHATSAPP_APP_SECRET: "demo-app-secret-not-for-production",
  WHATSAPP_VERIFY_TOKEN: "demo-verify-token",
  WHATSAPP_PHONE_NUMBER_ID: "106540352242922",
  WHATSAPP_DISPLAY_PHONE_NUMBER: "15550783881",
  WHATSAPP_ACCESS_TOKEN: "demo-access-token-not-for-production",
  ADMIN_API_KEY: "demo-admin-key-not-for-production",
  SECRETS_KEY: "ZGVtby1zZWNyZXRzLWtleS0zMi1ieXRlcy1sb25nISE=",
  BUSINESS_NAME: "Demo Business",
  QUEUE_PREFIX: "wabot-demo",
  SMS_PROVIDER: "sandbox",
  VOICE_PROVIDER: "sandbox",
  EMAIL_PROVIDER: "sandbox",
  PUBLIC_BASE_URL: "http://localhost:3000",
};
