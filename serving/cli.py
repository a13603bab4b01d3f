"""The ``scorepub`` command: the publisher's commands plus score, serve and quickstart."""
from __future__ import annotations

import sys
from pathlib import Path

import click
import orjson

from publisher.cli import (json_option, one_line_errors, pass_ctx, register_environment_commands,
                           register_publisher_commands)
from publisher.errors import PublishError

# The codecs, the runtime, pandas and Flask are imported by the commands that use them: the
# registry commands (services, versions, promote, ...) load none of them.


@click.group()
@click.version_option(package_name="scorepub")
def cli():
    """Publish classic Execute Python Script experiments as scoring web services.

    Configuration comes from SCOREPUB_* environment variables (see the README);
    SCOREPUB_HOME (default ./.scorepub) holds the embedded registry and artifacts.
    """


def smoke_factory(ctx):
    from .smoke import smoke_call

    return smoke_call(ctx.settings)


register_publisher_commands(cli, smoke_factory)
register_environment_commands(cli)


@cli.command("score")
@click.argument("name")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--version", "number", type=int, default=None, help="A version other than the live one.")
@click.option("--details", is_flag=True, help="Also print the output log, plots and timing.")
@json_option
@pass_ctx
@one_line_errors
def score_cmd(ctx, name, file, number, details, as_json):
    """Score FILE (.json rows or .csv) locally through the same runtime, without HTTP."""
    from publisher.schema import parse_schema

    from .calls import CallCore, CallFailed, CallRequest, Target
    from .runtime.dispatcher import Runtime

    registry = ctx.registry
    svc = registry.service(name)
    if number is None:
        if svc.live_version is None:
            raise PublishError(f"{name} has no live version")
        number = svc.live_version
    version = registry.version(name, number)
    if version.retired:
        raise PublishError(f"version {number} of {name} is retired")
    schema = parse_schema(orjson.loads(version.schema_json))
    _ensure_environment(ctx, version.digest)
    runtime = Runtime(ctx.settings, ctx.store.get)
    request = CallRequest(file.read_bytes(), "csv" if file.suffix.lower() == ".csv" else "rows", "rows", details)
    try:
        scored = CallCore(ctx.settings, runtime).score(Target(name, version.digest, schema, number), request)
    except CallFailed as failed:
        raise PublishError(failed.one_line()) from None
    finally:
        runtime.close()
    result = scored.result
    if as_json:
        click.echo(scored.body.decode())
        return
    frame = result.output.to_frame()
    click.echo(frame.to_string(index=False) if len(frame.columns) else "(no columns)")
    if details:
        click.echo(f"--- output log ---\n{result.log}" if result.log else "--- output log is empty ---")
        for plot_name, data in result.plots:
            click.echo(f"plot: {plot_name} ({len(data)} bytes)")
        click.echo(f"timing: {result.timing}")


def _ensure_environment(ctx, digest: str) -> None:
    """A CLI call may wait for a build (a server never does): build the version's environment
    here if this machine lacks it (pruned, or published on another replica)."""
    from publisher import artifact
    from publisher.cli import ProgressBar
    from publisher.environments import Environments

    lock = artifact.load(ctx.store.get(digest), digest).lock
    envs = Environments(ctx.settings)
    if lock is not None and envs.find(lock) is None:
        bar = ProgressBar()
        try:
            envs.ensure(lock, progress=bar)
        finally:
            bar.close()


@cli.group("admin")
def admin_group():
    """Admin page logins."""


@admin_group.command("create-user")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@pass_ctx
@one_line_errors
def create_user_cmd(ctx, name, password_stdin):
    """Make an admin page login (or set a new password for one)."""
    from .admin.auth import hash_password

    if password_stdin or not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    if len(password) < 8:
        raise PublishError("the password must have at least 8 characters")
    ctx.registry.create_user(name, hash_password(password))
    click.echo(f"admin user {name} can log in at /admin/")


@cli.command("serve")
@click.option("--host", default=None, help="Address to bind (SCOREPUB_HOST, default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (SCOREPUB_PORT, default 8080).")
@click.option("--workers", type=int, default=None, help="Web worker processes (SCOREPUB_WEB_WORKERS).")
@pass_ctx
def serve_cmd(ctx, host, port, workers):
    """Run the HTTP service under gunicorn."""
    from .server import run

    run(ctx.settings, host=host, port=port, workers=workers)


@cli.command("quickstart")
@click.option("--examples", type=click.Path(exists=True, file_okay=False, path_type=Path), default=Path("examples"),
              help="A folder of experiment folders to publish (each published under its folder name).")
@click.option("--host", default=None)
@click.option("--port", type=int, default=None)
@pass_ctx
@one_line_errors
def quickstart_cmd(ctx, examples, host, port):
    """Publish every example, print a key and a curl line for each, then serve."""
    from publisher.publish import publish
    from publisher.registry import default_actor

    from .server import run

    settings = ctx.settings
    host = host or settings.host
    port = port or settings.port
    url = f"http://{host}:{port}"
    lines = []
    for folder in sorted(p for p in examples.iterdir() if (p / "score.py").is_file()):
        name = folder.name
        outcome = publish(folder, name, settings=settings, registry=ctx.registry, store=ctx.store,
                          message="quickstart", promote=True, published_by=default_actor(),
                          smoke=smoke_factory(ctx))
        keys = outcome.published.keys
        if keys:
            key, slot = keys["primary"], "primary"
        else:  # keys are stored hashed: give the demo a fresh secondary key, the primary keeps working
            key, slot = ctx.registry.regenerate_key(name, "secondary", default_actor()), "secondary"
        sample = _curl_body(folder)
        lines.append(f"\n{name}  (v{outcome.published.version.version}, {slot} key: {key})\n"
                     f"  curl -s -X POST {url}/services/{name}/score -H 'Authorization: Bearer {key}' "
                     f"-H 'Content-Type: application/json' -d '{sample}'")
    click.echo(f"scorepub serving {len(lines)} example services at {url}" + "".join(lines) + "\n", err=False)
    sys.stdout.flush()
    run(settings, host=host, port=port)


def _curl_body(folder: Path) -> str:
    sample = folder / "sample.json"
    if not sample.is_file():
        return "[]"
    return orjson.dumps(orjson.loads(sample.read_bytes())).decode().replace("'", "'\\''")


def main() -> None:
    cli(prog_name="scorepub")


if __name__ == "__main__":
    main()
