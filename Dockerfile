# Two images from one Dockerfile (docker-compose.yml picks the target):
#   --target services  beater and tailor: Python 3.11 and the services' virtualenv,
#                      nothing of crossbar's tree (python -m beater, python -m tailor)
#   --target router    crossbar and its pins, the router config, the page and
#                      its autobahn-js (crossbar start --cbdir /tmp/crossbar
#                      --config /app/router/config.json); a router node that is
#                      not the front (deploy/compose.routers.yml) runs
#                      --config /app/router/config.partition.json instead
# Build stages hold pip and npm; the final stages copy only their results:
# no compilers, no npm, no pip caches. Both run as the non-root user estrom
# (uid 10001) and keep nothing writable but /tmp (a tmpfs in the compose file,
# whose root filesystems are read-only). No secret is ever baked in: they come
# from the environment at run time.
#
# The base images are build arguments so that a mirror or a local stand-in
# can take their place (ESTROM_PYTHON_IMAGE / ESTROM_NODE_IMAGE in the compose file).
ARG PYTHON_IMAGE=python:3.11-slim
ARG NODE_IMAGE=node:22-slim

FROM ${NODE_IMAGE} AS assets
WORKDIR /assets
COPY router/package.json router/package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund --loglevel=error

FROM ${PYTHON_IMAGE} AS build-router
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
COPY router/requirements.txt /src/requirements.txt
RUN python -m venv /opt/venv-router \
    && /opt/venv-router/bin/pip install -r /src/requirements.txt \
    && /opt/venv-router/bin/pip uninstall -y -q pip
COPY router/config.json deploy/router_config.py /src/
RUN python /src/router_config.py /src/config.json /src/config.rendered.json /app/router \
    && python /src/router_config.py /src/config.json /src/config.partition.json /app/router partition

FROM ${PYTHON_IMAGE} AS build-services
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
COPY pyproject.toml README.md /src/
COPY common /src/common
COPY beater /src/beater
COPY tailor /src/tailor
COPY devstack /src/devstack
COPY estrom_cli /src/estrom_cli
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install /src \
    && /opt/venv/bin/pip uninstall -y -q pip

FROM ${PYTHON_IMAGE} AS router
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 HOME=/tmp PATH=/opt/venv-router/bin:$PATH
RUN useradd --system --uid 10001 --no-create-home --home-dir /tmp estrom
COPY --from=build-router /opt/venv-router /opt/venv-router
COPY router/web /app/router/web
COPY router/estrom_router /app/router/estrom_router
# The router's readers gate imports these modules (standard library only, but
# metrics.py: prometheus-client, which router/requirements.txt adds to crossbar's pins);
# contract.py holds the wire's names, the router's and the services' alike.
COPY common/__init__.py common/contract.py common/environment.py common/lazy_log_args.py common/indices.py common/metrics.py common/periodic.py /app/common/
COPY common/access/__init__.py common/access/access_file.py common/access/callers.py common/access/errors.py common/access/exposure.py common/access/quotas.py common/access/readers.py common/access/scopes.py common/access/tokens.py /app/common/access/
COPY common/query/__init__.py common/query/target_syntax.py /app/common/query/
COPY --from=build-router /src/config.rendered.json /app/router/config.json
COPY --from=build-router /src/config.partition.json /app/router/config.partition.json
COPY --from=assets /assets/node_modules /app/router/node_modules
USER 10001
WORKDIR /tmp
EXPOSE 8080
CMD ["crossbar", "start", "--cbdir", "/tmp/crossbar", "--config", "/app/router/config.json", "--loglevel", "warn"]

FROM ${PYTHON_IMAGE} AS services
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 HOME=/tmp PATH=/opt/venv/bin:$PATH \
    ESTROM_BEATER_LISTEN=tcp:8081:interface=0.0.0.0 \
    ESTROM_TAILOR_LISTEN=tcp:8082:interface=0.0.0.0
RUN useradd --system --uid 10001 --no-create-home --home-dir /tmp estrom
COPY --from=build-services /opt/venv /opt/venv
USER 10001
WORKDIR /tmp
EXPOSE 8081 8082
CMD ["python", "-m", "beater"]
