# syntax=docker/dockerfile:1
# The booking-events command line: producers, processor, sink and replay all
# run from this one image; the compose file picks the subcommand.
#
#   docker build -t booking-events .
#   docker run --rm booking-events --help

# Build stage: install the project and its dependencies into a virtualenv, so
# the runtime stage copies one directory and none of the sources or caches.
FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN python -m venv /opt/venv
WORKDIR /src
COPY . .
RUN /opt/venv/bin/pip install .

# Runtime stage: the virtualenv and an unprivileged user, nothing else.
FROM python:3.11-slim

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

# faust keeps its table state under the working directory, so the user owns it.
RUN groupadd --system --gid 10001 booking \
    && useradd --system --uid 10001 --gid booking --home-dir /var/lib/booking-events \
        --create-home --shell /usr/sbin/nologin booking

COPY --from=build /opt/venv /opt/venv

USER booking
WORKDIR /var/lib/booking-events

# Prometheus metrics of the processor and the sink (BOOKING_EVENTS_METRICS_PORT).
EXPOSE 9464

ENTRYPOINT ["booking-events"]
CMD ["--help"]
