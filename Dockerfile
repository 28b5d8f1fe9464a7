# syntax=docker/dockerfile:1
# k8s-runner operator image: build with the full toolchain, run on distroless Node.js as
# the non-root user 65532 with only dist/ and the production node_modules.
#   docker build -t ghcr.io/agynio/k8s-runner:0.1.0 .

ARG NODE_IMAGE=node:24-bookworm-slim
ARG RUNTIME_IMAGE=gcr.io/distroless/nodejs24-debian12:nonroot

FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

FROM ${RUNTIME_IMAGE}
WORKDIR /app
ENV NODE_ENV=production
# V8's heap sized explicitly (the benchmarks run the operator with this environment:
# bench/lib/deployed-env.ts). A smaller young generation: at 1,000 workloads the peak RSS is
# 135 MiB instead of 151 MiB with the same throughput. A 512 MiB old generation: V8 sizes it
# from the memory it sees, and on a large host (or without a memory limit) lets the heap grow
# up to 4x between full GCs; under the Inspect load at 500 workloads the peak RSS was
# 256 MiB without it and about 160 MiB with it (bench:grpc). Raise it with the memory limit
# (operator.extraEnv NODE_OPTIONS) beyond about 10,000 cached agents.
ENV NODE_OPTIONS="--max-semi-space-size=8 --max-old-space-size=512"
# package.json carries "type": "module" for dist/.
COPY --from=deps --chown=0:0 /app/package.json ./package.json
COPY --from=deps --chown=0:0 /app/node_modules ./node_modules
COPY --from=build --chown=0:0 /app/dist ./dist
USER 65532:65532
# gRPC (GRPC_PORT) and /metrics, /healthz, /readyz (HTTP_PORT).
EXPOSE 50051 8080
# The distroless entrypoint is node.
CMD ["dist/main.js"]
