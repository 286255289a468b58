# Two images from one file (docs/deploy.md, "Container images"):
#   docker build --target lambda -t subscriber-portal:lambda .   # Lambda container image
#   docker build --target server -t subscriber-portal:server .   # uvicorn on port 8000
# Both install only the pinned runtime dependencies (requirements/*.txt from `make lock`), never
# the dev tools, and copy only app/ (.dockerignore).

# --- Lambda: the AWS base image runs the same handler as the zip deployment. ---------------------
FROM public.ecr.aws/lambda/python:3.12 AS lambda
COPY requirements/lambda.txt /tmp/requirements.txt
# Into the task root, beside the code, as Lambda's own images expect; boto3 comes pinned too.
RUN pip install --no-cache-dir --target "${LAMBDA_TASK_ROOT}" -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt
COPY app/ ${LAMBDA_TASK_ROOT}/app/
CMD ["app.handler.handler"]

# --- Server: dependencies built in a throw-away stage, copied as one virtualenv. -----------------
FROM python:3.12-slim AS server-deps
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
COPY requirements/server.txt /tmp/requirements.txt
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir -r /tmp/requirements.txt

FROM python:3.12-slim AS server
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# A container is never the laptop: with the default APP_ENV=local the app would look for the
# local engine (DynamoDB Local on Java), which is not installed here. prod also insists on a real JWT secret.
# Override with dev or staging as needed.
ENV APP_ENV=prod
# uvicorn (which reads this variable) and the app trust X-Forwarded-For from these proxies only;
# empty: from nobody. Behind a proxy, set it to the proxy's addresses (docs/auth.md).
ENV FORWARDED_ALLOW_IPS=""
RUN useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin portal
COPY --from=server-deps /opt/venv /opt/venv
WORKDIR /srv
COPY app/ ./app/
USER 10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]
# 0.0.0.0 inside the container's own network namespace; publish with -p 127.0.0.1:8000:8000.
# Workers: WEB_CONCURRENCY (read by uvicorn).
CMD ["uvicorn", "app.main:app", "--host", "0.0.0.0", "--port", "8000"]
