# One image for every wattbus service; compose picks the service by its command.
FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN useradd --system --uid 10001 --home /var/lib/wattbus --create-home wattbus \
    && usermod -a -G dialout wattbus
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY shared shared
COPY services services
COPY simulators simulators
RUN pip install . && rm -rf /src
WORKDIR /var/lib/wattbus
USER wattbus
# Written by the service runner after each status publish; read by `wattbus healthcheck`.
ENV WATTBUS_HEALTH_FILE=/tmp/wattbus-health WATTBUS_CONFIG=/etc/wattbus/wattbus.toml
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 CMD ["wattbus", "healthcheck"]
CMD ["wattbus", "--help"]
