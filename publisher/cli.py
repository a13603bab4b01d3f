"""The publishing half of the ``scorepub`` CLI (no HTTP here; ``serving.cli`` adds serving)."""
from __future__ import annotations

import functools
import sys
import time
from pathlib import Path

import click
import orjson

from .artifact_store import FolderArtifactStore
from .errors import PublishError
from .registry import Registry, default_actor
from .settings import Settings

# Heavy modules (pandas, numpy, the experiment checks) are imported by the commands that need
# them, so the commands that only read or change the registry start fast.


class Context:
    """Settings, registry and store, opened on first use by a command."""

    def __init__(self):
        self.settings = Settings.from_env()
        self._registry = None

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            self._registry = Registry(self.settings.database_url)
        return self._registry

    @property
    def store(self) -> FolderArtifactStore:
        return FolderArtifactStore(self.settings.artifact_dir)


pass_ctx = click.make_pass_decorator(Context, ensure=True)


def emit(as_json: bool, data, human: str) -> None:
    if as_json:
        click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())
    else:
        click.echo(human)


def one_line_errors(fn):
    """Every refusal exits non-zero with one line (plus --json's object when asked)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from sqlalchemy.exc import DBAPIError

        try:
            return fn(*args, **kwargs)
        except (PublishError, DBAPIError) as exc:
            if isinstance(exc, DBAPIError):  # e.g. a full disk: what failed, not a traceback
                exc = PublishError(f"the registry could not be read or written ({exc.orig})")
            message = " ".join(str(exc).split("\n"))
            if kwargs.get("as_json"):
                click.echo(orjson.dumps({"error": message}).decode())
            click.echo(f"error: {message}", err=True)
            sys.exit(1)

    return wrapper


json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


def version_row(v, live: int | None) -> dict:
    return {"version": v.version, "digest": v.digest, "live": v.version == live, "retired": v.retired,
            "published_at": v.created_at.isoformat(), "published_by": v.published_by, "message": v.message}


class ProgressBar:
    """Publish progress on stderr: a bar redrawn in place on a terminal, one line per step elsewhere."""

    WIDTH = 24

    def __init__(self):
        self.tty = sys.stderr.isatty()
        self.start = time.monotonic()
        self.drawn = False

    def __call__(self, stage: str, detail: str) -> None:
        from .environments import STAGES

        step = STAGES.index(stage) + 1 if stage in STAGES else 1
        filled = self.WIDTH * step // len(STAGES)
        line = f"environment [{'#' * filled}{'.' * (self.WIDTH - filled)}] {time.monotonic() - self.start:5.1f}s {detail}"
        if self.tty:
            click.echo(f"\r\033[K{line}", err=True, nl=stage == "done")
            self.drawn = stage != "done"
        else:
            click.echo(line, err=True)

    def close(self) -> None:
        if self.drawn:
            click.echo("", err=True)
            self.drawn = False


def _env_line(env: dict) -> str:
    if env["id"] is None:
        return f"unknown ({env['error']})"
    shown = ("scikit-learn", "pandas", "numpy")
    named = ", ".join(f"{n} {env['packages'][n]}" for n in shown if n in env["packages"])
    more = len(env["packages"]) - sum(n in env["packages"] for n in shown)
    return (f"{env['id'][:12] if env['id'] != 'default' else 'default'} (Python {env['python']}; {named}"
            + (f", {more} more" if more > 0 else "") + ")")


def register_publisher_commands(cli: click.Group, smoke_factory=None) -> None:
    """Add the registry commands to ``cli``; ``smoke_factory(ctx)`` supplies the publish smoke call."""

    @cli.command("publish")
    @click.argument("folder", type=click.Path(path_type=Path))
    @click.option("--name", required=True, help="Service name (lowercase letters, digits, '-').")
    @click.option("--message", "-m", default="", help="What this version changes.")
    @click.option("--promote", is_flag=True, help="Make the new version live (the first version always is).")
    @click.option("--bundle", type=click.Path(path_type=Path), help="A Script Bundle zip kept elsewhere.")
    @click.option("--no-smoke", is_flag=True, help="Skip the smoke call with sample.json.")
    @click.option("--by", default=None, help="Who publishes (default: the OS user).")
    @click.option("--upgrade", is_flag=True, help="Resolve requirements.txt again (newest allowed releases).")
    @json_option
    @pass_ctx
    @one_line_errors
    def publish_cmd(ctx, folder, name, message, promote, bundle, no_smoke, by, upgrade, as_json):
        """Validate, freeze and register an experiment folder as a new version."""
        from .publish import publish

        smoke = None if no_smoke or smoke_factory is None else smoke_factory(ctx)
        bar = None if as_json else ProgressBar()
        try:
            outcome = publish(folder, name, settings=ctx.settings, registry=ctx.registry, store=ctx.store,
                              message=message, promote=promote, published_by=by or default_actor(),
                              bundle_path=bundle, smoke=smoke, upgrade=upgrade, progress=bar)
        finally:
            if bar is not None:
                bar.close()
        data = outcome.as_dict()
        lines = [f"warning: {w}" for w in outcome.warnings]
        env = data["environment"]
        if env["id"] != "default":
            how = (f"built in {env['build_seconds']:.1f} s" if env["built"] else "already built")
            lines.append(f"environment {env['id'][:12]}: {env['packages']} packages, {env['size_mb']:.0f} MB, {how}")
        verb = "published" if data["created"] else "unchanged"
        lines.append(f"{verb} {name} version {data['version']} ({data['digest'][:12]})"
                     + (", live" if data["live"] else ""))
        for slot, key in (data.get("keys") or {}).items():
            lines.append(f"{slot} key: {key}")
        if data.get("keys"):
            lines.append("(keys are shown once; store them now)")
        emit(as_json, data, "\n".join(lines))

    @cli.command("migrate")
    @click.argument("folder", type=click.Path(path_type=Path))
    @click.option("--out", type=click.Path(path_type=Path), help="Where to write the copy (default FOLDER-modern).")
    @json_option
    @one_line_errors
    def migrate_cmd(folder, out, as_json):
        """Write a modernized copy of a classic experiment (Python 3, today's pandas and numpy)
        and print its diff; the folder itself is left as it is."""
        from .migrate import migrate

        result = migrate(folder, out)
        data = {"out": str(result.out), "python_version": result.python_version, "diffs": result.diffs,
                "remaining": result.remaining}
        lines = [text.rstrip("\n") for text in result.diffs.values()]
        lines += [f"left for you: {use}" for use in result.remaining]
        lines.append(f"wrote {result.out} ({len(result.diffs)} file(s) changed"
                     + (", converted from Python 2.7" if result.python_version == "2.7" else "") + ")")
        emit(as_json, data, "\n".join(lines))

    @cli.command("services")
    @json_option
    @pass_ctx
    @one_line_errors
    def services_cmd(ctx, as_json):
        """List services with their live version."""
        rows = []
        for svc in ctx.registry.services():
            versions = ctx.registry.versions(svc.name)
            live = next((v for v in versions if v.version == svc.live_version), None)
            rows.append({"name": svc.name, "id": svc.id, "live_version": svc.live_version,
                         "versions": len(versions), "digest": live.digest if live else None,
                         "published_at": live.created_at.isoformat() if live else None,
                         "message": live.message if live else None})
        human = "\n".join(f"{r['name']:<24} live v{r['live_version'] or '-'}  ({r['versions']} versions)  "
                          f"{(r['digest'] or '')[:12]}  {r['message'] or ''}" for r in rows) or "no services"
        emit(as_json, rows, human)

    @cli.command("versions")
    @click.argument("name")
    @json_option
    @pass_ctx
    @one_line_errors
    def versions_cmd(ctx, name, as_json):
        """List the versions of a service."""
        from .environments import version_environment

        svc = ctx.registry.service(name)
        rows = []
        for v in ctx.registry.versions(name):
            row = version_row(v, svc.live_version)
            row["environment"] = version_environment(ctx.store, v.digest)
            rows.append(row)
        human = "\n".join(
            f"v{r['version']:<4} {'live   ' if r['live'] else 'retired' if r['retired'] else '       '} "
            f"{r['digest'][:12]}  {r['published_at'][:19]}  {r['published_by']}  {r['message']}\n"
            f"      environment {_env_line(r['environment'])}" for r in rows)
        emit(as_json, rows, human)

    @cli.command("promote")
    @click.argument("name")
    @click.argument("version", type=int)
    @json_option
    @pass_ctx
    @one_line_errors
    def promote_cmd(ctx, name, version, as_json):
        """Make VERSION the live version."""
        v = ctx.registry.promote(name, version, default_actor())
        emit(as_json, {"service": name, "live_version": v.version}, f"{name}: version {v.version} is live")

    @cli.command("rollback")
    @click.argument("name")
    @json_option
    @pass_ctx
    @one_line_errors
    def rollback_cmd(ctx, name, as_json):
        """Make the previously live version live again."""
        v = ctx.registry.rollback(name, default_actor())
        emit(as_json, {"service": name, "live_version": v.version}, f"{name}: rolled back to version {v.version}")

    @cli.command("retire")
    @click.argument("name")
    @click.argument("version", type=int)
    @json_option
    @pass_ctx
    @one_line_errors
    def retire_cmd(ctx, name, version, as_json):
        """Stop VERSION from serving, for good (its record and artifact are kept)."""
        v = ctx.registry.retire(name, version, default_actor())
        svc = ctx.registry.service(name)
        note = "" if svc.live_version is not None else f"; {name} has no live version now"
        emit(as_json, {"service": name, "version": v.version, "retired": True, "live_version": svc.live_version},
             f"{name}: version {v.version} retired{note}")

    @cli.group("keys")
    def keys_group():
        """API keys."""

    @keys_group.command("regenerate")
    @click.argument("name")
    @click.argument("slot", type=click.Choice(["primary", "secondary"]))
    @json_option
    @pass_ctx
    @one_line_errors
    def regenerate_cmd(ctx, name, slot, as_json):
        """Replace one key; the other keeps working."""
        key = ctx.registry.regenerate_key(name, slot, default_actor())
        emit(as_json, {"service": name, "slot": slot, "key": key}, f"{name} {slot} key: {key}")

    @cli.command("diff")
    @click.argument("name")
    @click.argument("v1", type=int)
    @click.argument("v2", type=int)
    @json_option
    @pass_ctx
    @one_line_errors
    def diff_cmd(ctx, name, v1, v2, as_json):
        """What changed between two versions: files, schema, parameters, limits; and how a
        Python 2.7 version was converted (give the same version twice to see just that)."""
        from .diff import diff_versions

        d = diff_versions(ctx.registry, ctx.store, name, v1, v2)
        lines = [f"{name}: v{v1} -> v{v2}"]
        for title, key in (("schema", "schema"), ("parameters", "parameters"), ("limits", "limits"),
                           ("packages", "packages")):
            lines += [f"{title}: {item}" for item in d[key]]
        for member, text in d["files"].items():
            lines.append(f"--- {member} changed")
            lines.append(text.rstrip("\n"))
        if len(lines) == 1:
            lines.append("no differences")
        for version, files in d["conversion"].items():
            for member, text in files.items():
                lines.append(f"--- {version}: {member} converted from Python 2.7")
                lines.append(text.rstrip("\n"))
        emit(as_json, d, "\n".join(lines))


def register_environment_commands(cli: click.Group) -> None:
    @cli.group("envs")
    def envs_group():
        """Per-version Python environments (built at publish from requirements.txt)."""

    @envs_group.command("list")
    @json_option
    @pass_ctx
    @one_line_errors
    def envs_list(ctx, as_json):
        """Every built environment: size, packages, which versions use it, when last used."""
        from .environments import Environments, environment_users

        users = environment_users(ctx.registry, ctx.store)
        rows = []
        for info in Environments(ctx.settings).listing():
            rows.append({"id": info["id"], "size_mb": round(info["size_bytes"] / 2**20, 1),
                         "packages": len(info["packages"]), "python": info["python"], "built_at": info["built_at"],
                         "last_used": info["last_used"], "users": users.get(info["id"], [])})
        human = "\n".join(f"{r['id'][:12]}  {r['size_mb']:>7.0f} MB  {r['packages']:>3} packages  "
                          f"last used {(r['last_used'] or 'never')[:19]}  "
                          f"{', '.join(r['users']) or 'unused (prune removes it)'}" for r in rows) or "no environments"
        emit(as_json, rows, human)

    @envs_group.command("prune")
    @click.option("--min-age-s", default=600, show_default=True,
                  help="Keep environments built more recently (a publish may be about to register one).")
    @json_option
    @pass_ctx
    @one_line_errors
    def envs_prune(ctx, min_age_s, as_json):
        """Remove the environments that no version still serving (not retired) uses."""
        from .environments import Environments, environment_users

        envs = Environments(ctx.settings)
        users = environment_users(ctx.registry, ctx.store)
        if None in users:  # an artifact that cannot be read now may name any environment: keep them all
            raise PublishError(f"cannot tell which environment {users[None][0]} uses (its artifact is unreadable); "
                               "nothing removed")
        keep = set(users)
        before = {i["id"]: i["size_bytes"] for i in envs.listing()}
        removed = envs.prune(keep, min_age_s)
        freed = sum(before.get(r, 0) for r in removed)
        emit(as_json, {"removed": removed, "freed_mb": round(freed / 2**20, 1)},
             f"removed {len(removed)} environment(s), {freed / 2**20:.0f} MB freed" if removed else "nothing to remove")
