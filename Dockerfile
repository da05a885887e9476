# The driver image: compiled JavaScript and production dependencies on a slim Node.js
# base, tini as PID 1 so SIGTERM reaches the driver and children are reaped.
# test/integration/image-layout.test.ts builds the runtime layout copied below and starts it.
FROM node:20-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
RUN npm ci --no-audit --no-fund
COPY csi-proto ./csi-proto
COPY src ./src
RUN npx tsc -p tsconfig.build.json && chmod +x dist/src/main.js && npm prune --omit=dev

FROM node:20-bookworm-slim
# tini: signal handling; mount (util-linux) and /bin/sh come with the base image.
RUN apt-get update && apt-get install -y --no-install-recommends tini && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=build /src/package.json ./package.json
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist/src ./dist/src
COPY --from=build /src/csi-proto ./csi-proto
ENV MALLOC_ARENA_MAX=2
ENTRYPOINT ["tini", "--", "node", "--max-semi-space-size=1", "--max-old-space-size=128", "/app/dist/src/main.js"]
CMD ["serve", "--help"]
