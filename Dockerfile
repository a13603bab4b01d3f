# scorepub serving image: `scorepub serve` (gunicorn on :8080) with the script sandbox.
#
#   docker build -t scorepub .
#   docker run --rm -p 8080:8080 --cap-drop ALL --cap-add SYS_ADMIN --cap-add SETUID \
#     --cap-add SETGID --cap-add CHOWN --cap-add DAC_OVERRIDE scorepub
#
# Runs as root *inside the container*, on purpose: as root the sandbox gives each service
# version's template its own unprivileged uid (SCOREPUB_SANDBOX_UID_BASE + a hash), so scripts
# share no uid with the web process or with each other (docs/sandbox.md).
#
# What the container must be given (why: docs/scale-out.md, "Container privileges"):
#   - CAP_SYS_ADMIN: the kernel refuses unshare(CLONE_NEWNET | CLONE_NEWPID) to root without
#     it, and Docker's default seccomp profile allows unshare() only to containers that hold it.
#     Keep the default seccomp profile (no seccomp=unconfined): with SYS_ADMIN it allows
#     unshare, and it allows the Landlock syscalls since Docker 20.10.18 / containerd 1.6.
#   - SETUID, SETGID (the uid drop), CHOWN and DAC_OVERRIDE (worker folders owned by the
#     sandbox uids, made and removed by the web process): drop every other capability.
# With the default SCOREPUB_SANDBOX=strict, `scorepub serve` refuses to start when a layer is
# missing and names it. SCOREPUB_SANDBOX=off runs without namespaces, uid drop, Landlock and
# seccomp: development only, never with scripts or callers you do not trust.
FROM python:3.11-slim-bookworm

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    SCOREPUB_HOME=/var/lib/scorepub \
    SCOREPUB_ARTIFACT_DIR=/artifacts \
    SCOREPUB_ENV_DIR=/envs \
    SCOREPUB_HOST=0.0.0.0 \
    SCOREPUB_PORT=8080

# libseccomp: the sandbox's seccomp layer (through pyseccomp)
RUN apt-get update \
 && apt-get install -y --no-install-recommends libseccomp2 \
 && rm -rf /var/lib/apt/lists/*

COPY pyproject.toml README.md /tmp/scorepub-src/
COPY publisher /tmp/scorepub-src/publisher
COPY serving /tmp/scorepub-src/serving
COPY scorepub_sandbox /tmp/scorepub-src/scorepub_sandbox
COPY templates /tmp/scorepub-src/templates
RUN pip install "/tmp/scorepub-src[classic,postgres]" \
 && rm -rf /tmp/scorepub-src \
 && mkdir -p "$SCOREPUB_HOME" "$SCOREPUB_ARTIFACT_DIR" "$SCOREPUB_ENV_DIR" \
 && chmod 755 "$SCOREPUB_ENV_DIR"  # the sandbox's uids read environments from here

# the examples, for `docker compose run --rm serving scorepub publish examples/... --name ...`
WORKDIR /opt/scorepub
COPY examples ./examples

EXPOSE 8080
# /readyz: registry reachable, every sandbox layer active, live versions' workers warm (an
# HTTP error or no answer makes urlopen raise: exit 1, unhealthy). No curl in the slim image.
HEALTHCHECK --interval=10s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:8080/readyz', timeout=4)"]

CMD ["scorepub", "serve", "--host", "0.0.0.0", "--port", "8080"]
