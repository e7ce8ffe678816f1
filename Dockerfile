# syntax=docker/dockerfile:1
# Build stage: install dependencies, type-check, then drop the dev dependencies.
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
# Optional packages include TypeScript's native compiler; the pinned Node binary package
# (for machines without Node 24) goes with the dev dependencies at the prune below.
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
COPY scripts ./scripts
COPY test ./test
RUN npx tsc --noEmit && npm prune --omit=dev --omit=optional
# Build the compact R4 definitions cache now: the runtime user cannot write node_modules.
RUN node -e "import('./src/fhir/definitions.ts').then((m) => m.loadDefinitions())"

# Runtime stage: the source runs as is (Node 24 strips TypeScript types), as a non-root user,
# with the Node flags of package.json's start script.
FROM node:24-bookworm-slim
ENV NODE_ENV=production HOST=0.0.0.0 PORT=8080 DATA_DIR=/data
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY package.json ./
COPY src ./src
COPY fixtures ./fixtures
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s CMD node -e "fetch('http://127.0.0.1:'+process.env.PORT+'/readyz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
CMD ["node", "--max-semi-space-size=32", "src/main.ts"]
