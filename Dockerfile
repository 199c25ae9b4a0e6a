# syntax=docker/dockerfile:1
# One image for every dropgate process; docker-compose.yml picks the command
# (npm run api | worker | sim | migrate). TypeScript runs directly on Node 24 (type stripping).

# Workspace manifests only, so `npm ci` below is cached until a package.json or the lockfile changes.
FROM node:24-slim AS manifests
WORKDIR /src
COPY . .
RUN mkdir -p /out \
 && cp package.json package-lock.json /out/ \
 && for f in packages/*/package.json services/*/package.json; do \
      mkdir -p "/out/$(dirname "$f")" && cp "$f" "/out/$f"; \
    done

FROM node:24-slim
ENV NPM_CONFIG_UPDATE_NOTIFIER=false \
    NPM_CONFIG_FUND=false \
    NPM_CONFIG_AUDIT=false
WORKDIR /app
RUN chown node:node /app

# Dependencies are installed by (and owned by) the unprivileged `node` user of the base image.
USER node
COPY --from=manifests --chown=node:node /out/ ./
RUN npm ci && npm cache clean --force

# The source is root-owned: the service can read its code, not change it.
COPY . .

# Containers must listen on all interfaces (outside containers HOST defaults to 127.0.0.1).
ENV HOST=0.0.0.0 \
    PORT=3000 \
    WORKER_METRICS_PORT=3001 \
    SIM_PORT=3100
EXPOSE 3000 3001 3100
CMD ["npm", "run", "api"]
