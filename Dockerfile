# The driver image: the bundled executable (scripts/bundle.mjs: our code and every runtime
# dependency in one file, so no node_modules) on a slim Node.js base, tini as PID 1 so
# SIGTERM reaches the driver and children are reaped.
# test/integration/image-layout.test.ts builds the runtime layout copied below and starts it.
FROM node:20-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY scripts ./scripts
COPY src ./src
RUN node scripts/bundle.mjs

FROM node:20-bookworm-slim
# tini: signal handling. perl-base (Essential in Debian, so already there) runs the mount
# helper that makes mount(2)/umount2(2) calls (src/driver/mounter.ts); named to say we need it.
RUN apt-get update && apt-get install -y --no-install-recommends tini perl-base && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=build /src/package.json ./package.json
COPY --from=build /src/dist/cce-secrets-manager.mjs ./cce-secrets-manager.mjs
COPY csi-proto ./csi-proto
ENV MALLOC_ARENA_MAX=2
ENTRYPOINT ["tini", "--", "node", "--max-semi-space-size=1", "--max-old-space-size=128", "/app/cce-secrets-manager.mjs"]
CMD ["serve", "--help"]
