# One image for every wattbus service; compose picks the service by its command.
FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# Fixed ids, not the next free system ones: secrets/ files are owner root, group 10001, mode 0440
# (mosquitto/make-passwords.sh), so the services read them through their primary group. dialout
# opens a serial IR head (compose.serial.yaml). The state directories exist in the image, owned by
# the service user, because a new named volume takes the owner of the directory it is mounted on:
# without them Docker creates the mount point as root and the writer's spool cannot be written.
RUN groupadd --system --gid 10001 wattbus \
    && useradd --system --uid 10001 --gid wattbus --groups dialout --no-create-home \
       --home-dir /var/lib/wattbus --shell /usr/sbin/nologin wattbus \
    && install -d -o wattbus -g wattbus -m 0750 /var/lib/wattbus /var/lib/wattbus/influx-writer
WORKDIR /src
# The dependencies first, at the versions of the lock file: this layer is rebuilt only when
# pyproject.toml or constraints.txt change, not on every code change.
COPY pyproject.toml constraints.txt ./
RUN python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep='\n')" \
       > /tmp/requirements.txt \
    && pip install -c constraints.txt -r /tmp/requirements.txt && rm /tmp/requirements.txt
COPY setup.py README.md ./
COPY shared shared
COPY services services
COPY simulators simulators
# A real (non-editable) install: what is not declared as package data is not in the image.
# PIP_CONSTRAINT reaches pip's isolated build environment too (-c does not): the build backend
# (setuptools) is the locked one.
RUN PIP_CONSTRAINT=/src/constraints.txt pip install . && pip check && rm -rf /src
WORKDIR /var/lib/wattbus
USER wattbus
# Written by the service runner after each status publish; read by `wattbus healthcheck`.
ENV WATTBUS_HEALTH_FILE=/tmp/wattbus-health WATTBUS_CONFIG=/etc/wattbus/wattbus.toml
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 CMD ["wattbus", "healthcheck"]
CMD ["wattbus", "--help"]
