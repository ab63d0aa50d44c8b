# syntax=docker/dockerfile:1
# The bot's image: one image for every role (API, workers, the migration job); the command picks the role.
#
#   docker build -t wabot .
#   docker run --rm --env-file .env wabot npm run migrate                          # release step, once per version
#   docker run -d --env-file .env -p 3000:3000 wabot node dist/src/main/api.js
#   docker run -d --env-file .env wabot node dist/src/main/worker.js
#
# The image runs the compiled build (`npm run build`: tsc into dist/, the web assets beside it), not tsx: about 50 MiB
# less memory per process and no compile at start. tsc fails on a type error, so a broken build never becomes an
# image. See docs/deploy.md.

ARG NODE_IMAGE=node:20-slim

# --- production dependencies (postinstall runs `prisma generate`: WebAssembly engines, nothing downloaded) ----
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
ENV CHECKPOINT_DISABLE=1
COPY package.json package-lock.json prisma.config.ts ./
COPY prisma ./prisma
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

# --- compile with the full dependency tree (a type error fails the build) -------------------------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /app
ENV CHECKPOINT_DISABLE=1
COPY package.json package-lock.json prisma.config.ts tsconfig.json tsconfig.build.json ./
COPY prisma ./prisma
RUN npm ci --no-audit --no-fund
COPY scripts/build.js ./scripts/build.js
COPY src ./src
RUN npm run build

# --- runtime --------------------------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS runtime
WORKDIR /app
# source maps: a stack trace in the logs points at the TypeScript line
ENV NODE_ENV=production \
    NODE_OPTIONS=--enable-source-maps \
    CHECKPOINT_DISABLE=1 \
    PORT=3000
COPY --from=deps /app/node_modules ./node_modules
# package.json: the version and the npm scripts (`npm run migrate`); prisma/ and prisma.config.ts: the migrations
COPY package.json package-lock.json prisma.config.ts ./
COPY prisma ./prisma
# the compiled application, with its Prisma client and web assets
COPY --from=build /app/dist ./dist
# built-in flows and the OpenAPI document are read at run time (found from the directory holding package.json)
COPY flows ./flows
COPY docs/openapi.yaml ./docs/openapi.yaml
# files stay root-owned and read-only to the app; it runs as the image's unprivileged `node` user
USER node
EXPOSE 3000
# node directly receives SIGTERM itself, so shutdown is graceful (in-flight jobs finish)
CMD ["node", "dist/src/main/all.js"]
