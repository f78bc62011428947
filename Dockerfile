# VideoFly service image: `videofly run` (HTTP server, scheduler, outbox, channels).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIDEOFLY__HTTP__HOST=0.0.0.0

# A system CJK font as well as the packaged one: Chinese in demo clips and /stats charts even
# from an image built without the font package (core/fonts.py tries both).
RUN apt-get update \
    && apt-get install -y --no-install-recommends fonts-noto-cjk \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin videofly
WORKDIR /app

COPY pyproject.toml README.md ./
COPY core ./core
COPY wallet ./wallet
COPY bot ./bot
COPY handlers ./handlers
COPY generation ./generation
COPY providers ./providers
COPY storage ./storage
COPY payments ./payments
COPY webhooks ./webhooks
RUN pip install . && mkdir -p /app/data && chown videofly:videofly /app/data
COPY config.toml ./

USER videofly
EXPOSE 8080
VOLUME ["/app/data"]
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4).status == 200 else 1)"]
CMD ["videofly", "run"]
