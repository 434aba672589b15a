# One image for the router, the beater and the tailor (docker-compose.yml picks
# the command). Like scripts/bootstrap: the services in one virtualenv, crossbar
# and its pins in another (its pins fight the services'), the page's browser
# assets from npm. Entry points, the same as scripts/stack runs:
#   python -m beater
#   python -m tailor
#   crossbar start --cbdir /app/router

FROM node:22-slim AS assets
WORKDIR /assets
COPY router/package.json router/package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund --loglevel=error

FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PATH=/opt/venv/bin:/opt/venv-router/bin:$PATH
WORKDIR /app

# The router's virtualenv first: its pins change least often.
COPY router/requirements.txt /app/router/requirements.txt
RUN python -m venv /opt/venv-router \
    && /opt/venv-router/bin/pip install -r /app/router/requirements.txt

COPY pyproject.toml README.md /app/
COPY common /app/common
COPY beater /app/beater
COPY tailor /app/tailor
COPY devstack /app/devstack
COPY estrom_cli /app/estrom_cli
RUN python -m venv /opt/venv && /opt/venv/bin/pip install /app

COPY router /app/router
COPY --from=assets /assets/node_modules /app/router/node_modules
# The checked-in config listens on 127.0.0.1 (a developer's machine); in a
# container the other services and the published port reach it on every interface.
RUN python -c "import json, pathlib; p = pathlib.Path('/app/router/config.json'); c = json.loads(p.read_text()); [t['endpoint'].update(interface='0.0.0.0') for w in c['workers'] for t in w.get('transports', [])]; p.write_text(json.dumps(c, indent=2))"

# Beater and tailor listen on every interface of the container.
ENV ESTROM_BEATER_LISTEN=tcp:8081:interface=0.0.0.0 \
    ESTROM_TAILOR_LISTEN=tcp:8082:interface=0.0.0.0

RUN useradd --system --home-dir /app estrom && mkdir -p /app/router/.crossbar && chown -R estrom /app/router
USER estrom
EXPOSE 8080 8081 8082
CMD ["python", "-m", "beater"]
