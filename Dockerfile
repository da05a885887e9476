# The driver image: the bundled executable (scripts/bundle.mjs: our code and every runtime
# dependency in one file) plus koffi, the FFI library that calls mount(2), whose native
# binary cannot be bundled; on a slim Node.js base, tini as PID 1 so SIGTERM reaches the
# driver and children are reaped.
# test/integration/image.test.ts builds this file with buildah and runs the image.
FROM node:24.22.3-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
# npm reaches the registry with Node.js's own CAs, as in any registry-connected build. Behind a
# TLS-inspecting proxy, give the build its CA bundle as the secret "ca" (never stored in a layer):
#   docker build --secret id=ca,src=/etc/ssl/certs/ca-certificates.crt .   (buildah bud: the same flag)
RUN --mount=type=secret,id=ca \
    if [ -f /run/secrets/ca ]; then export NODE_EXTRA_CA_CERTS=/run/secrets/ca; fi; \
    npm ci --no-audit --no-fund
COPY scripts ./scripts
COPY src ./src
RUN node scripts/bundle.mjs
# koffi and its prebuilt binary for this platform only.
RUN --mount=type=secret,id=ca \
    if [ -f /run/secrets/ca ]; then export NODE_EXTRA_CA_CERTS=/run/secrets/ca; fi; \
    mkdir -p /koffi && npm install --prefix /koffi --no-save --no-audit --no-fund --omit=dev "koffi@$(node -p "require('./package.json').dependencies.koffi")"

FROM node:24.22.3-bookworm-slim
# tini: signal handling.
RUN apt-get update && apt-get install -y --no-install-recommends tini && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=build /src/package.json ./package.json
COPY --from=build /src/dist/cce-secrets-manager.mjs ./cce-secrets-manager.mjs
COPY --from=build /koffi/node_modules ./node_modules
COPY csi-proto ./csi-proto
ENV MALLOC_ARENA_MAX=2
ENTRYPOINT ["tini", "--", "node", "--max-semi-space-size=1", "--max-old-space-size=128", "--disable-warning=DEP0169", "/app/cce-secrets-manager.mjs"]
CMD ["serve", "--help"]
