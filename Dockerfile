# syntax=docker/dockerfile:1
# Gatehouse: gunicorn serving config.wsgi with the production settings.
# Secrets come from the environment at run time; none are baked into the image.

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
COPY requirements.txt /tmp/requirements.txt
RUN /opt/venv/bin/pip install -r /tmp/requirements.txt

FROM python:3.11-slim AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DJANGO_SETTINGS_MODULE=config.settings.production \
    PORT=8000
RUN groupadd --system gatehouse && useradd --system --gid gatehouse --home-dir /app --shell /usr/sbin/nologin gatehouse
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
# The code belongs to root: the process that serves it cannot change it.
COPY . /app
# Throwaway values exist only for this build step: collectstatic must import the settings.
RUN DJANGO_SECRET_KEY=build-only DJANGO_ALLOWED_HOSTS=build JWT_SIGNING_KEY=build-only-build-only-build-only-0000 \
    python manage.py collectstatic --noinput
USER gatehouse
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
CMD ["gunicorn", "-c", "config/gunicorn.py", "config.wsgi:application"]
