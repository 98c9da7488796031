# Production image: slim, non-root, dependencies installed from the lock file.
FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app

COPY requirements.lock ./
RUN pip install -r requirements.lock

COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-deps . \
 && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin app \
 && mkdir -p /app/var && chown app /app/var
# /app/var: DATA_DIR; compose's dev profile mounts a volume here for its dev signing key
# (a fresh named volume takes this directory's owner, so the app user can write the key).

USER app
EXPOSE 8000
ENTRYPOINT ["discount-codes"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2", "--no-worker"]
