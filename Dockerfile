# syntax=docker/dockerfile:1
# The bot's image: one image for every role (API, workers, the migration job); the command picks the role.
#
#   docker build -t wabot .
#   docker run --rm --env-file .env wabot npm run migrate                          # release step, once per version
#   docker run -d --env-file .env -p 3000:3000 wabot node --import tsx src/main/api.ts
#   docker run -d --env-file .env wabot node --import tsx src/main/worker.ts
#
# The app runs TypeScript through tsx, as `npm start` does; the build stage type-checks it so a broken build never
# becomes an image. See docs/deploy.md.

ARG NODE_IMAGE=node:20-slim

# --- production dependencies (postinstall runs `prisma generate`: WebAssembly engines, nothing downloaded) ----
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
ENV CHECKPOINT_DISABLE=1
COPY package.json package-lock.json prisma.config.ts ./
COPY prisma ./prisma
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

# --- type check with the full dependency tree ---------------------------------------------------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /app
ENV CHECKPOINT_DISABLE=1
COPY package.json package-lock.json prisma.config.ts tsconfig.json ./
COPY prisma ./prisma
RUN npm ci --no-audit --no-fund
COPY src ./src
RUN npx tsc -p tsconfig.json --noEmit && touch /app/.typechecked

# --- runtime --------------------------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS runtime
WORKDIR /app
ENV NODE_ENV=production \
    CHECKPOINT_DISABLE=1 \
    PORT=3000
COPY --from=deps /app/node_modules ./node_modules
COPY package.json package-lock.json prisma.config.ts tsconfig.json ./
COPY prisma ./prisma
COPY src ./src
# the Prisma client generated for this schema (src/generated is not in the repository)
COPY --from=deps /app/src/generated ./src/generated
# built-in flows and the OpenAPI document are read at run time
COPY flows ./flows
COPY docs/openapi.yaml ./docs/openapi.yaml
# the image exists only if the type check passed
COPY --from=build /app/.typechecked /app/.typechecked
# files stay root-owned and read-only to the app; it runs as the image's unprivileged `node` user
USER node
EXPOSE 3000
# `npm start` works too; node directly receives SIGTERM itself, so shutdown is graceful (in-flight jobs finish)
CMD ["node", "--import", "tsx", "src/main/all.ts"]
