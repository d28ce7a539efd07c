"""Operations commands: ``backup``, ``restore``, ``export``.

``node/cli/main.py`` adds ``COMMANDS`` to the ``hygeia`` group (node/cli/registry.py).
User errors are one ``Error: ...`` line and exit code 1. See docs/backup.md.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click

from node.api.remote import ClientError, request_json, signed_request
from node.bench.progress import TaskBar, is_terminal
from node.cli import options
from node.cli.errors import user_errors
from node.core.keys import KeyFileError, load_key
from node.net.addr import parse_host_port
from node.ops import backup as bk
from node.ops import export as ex
from node.setup.config import ConfigError, NodeConfig, load_config
from node.setup.home import read_admin_token
from storage.errors import StorageError

__all__ = ["COMMANDS", "backup", "export", "local_url", "restore"]


def local_url(listen: str) -> str:
    """The URL to reach a local listener (``host:port``; a wildcard host becomes loopback)."""
    host, port = parse_host_port(listen)
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


@contextlib.contextmanager
def _progress(label: str, total: int | None) -> Iterator[Callable[[int], None] | None]:
    """A progress bar (bytes) on a terminal (stderr); nothing otherwise."""
    if not is_terminal(sys.stderr):
        yield None
        return
    columns = ("{task.description}", "bar", "download", "remaining")
    with TaskBar(label, columns, total=total) as bar:
        yield bar.advance


def _describe(m: bk.Manifest) -> str:
    return (
        f"chain {m.chain_id}, height {m.height}, {m.key_count} keys, "
        f"{m.payload_bytes} bytes, sha256 {m.payload_sha256}"
    )


def _backup_through_node(cfg: NodeConfig, out: Path, include_node_key: bool) -> bk.Manifest:
    url = local_url(cfg.admin.listen) + "/admin/backup"
    token = read_admin_token(cfg.admin_token_path)
    body = ('{"include_node_key": %s}' % ("true" if include_node_key else "false")).encode()
    try:
        answer = request_json("POST", url, body, token=token, timeout=3600)
    except ClientError as err:
        if err.status == 404:
            raise click.ClickException(
                "the node is running, so the backup must be taken through it, but its "
                "mutating admin routes are disabled: set [admin] enable_mutations = true "
                "and restart it, or stop the node and run hygeia backup again"
            ) from None
        raise click.ClickException(f"backup through the running node failed: {err}") from None
    made = Path(answer["path"])
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(made, out)
    with _progress("verifying", bk.read_manifest(out).total_bytes) as advance:
        return bk.verify_backup(out, advance)


@click.command(name="backup")
@options.home(show_envvar=False)
@click.option("--out", type=options.FILE, required=True, help="Backup file.")
@click.option(
    "--include-node-key",
    is_flag=True,
    help="Put the node key (and the document store's key) in the backup (secret: two "
    "nodes with one key equivocate).",
)
@user_errors
def backup(home: Path, out: Path, include_node_key: bool) -> None:
    """Back up a node's database: directly when it is stopped, through its admin API
    (POST /admin/backup) when it runs. Records the height and a SHA-256 checksum."""
    cfg = load_config(home)
    if out.exists():
        raise click.ClickException(f"{out} already exists")
    key_path = cfg.node_key_path if include_node_key else None
    try:
        with _progress("backup", None) as advance:
            manifest = bk.backup_home(
                cfg.data_dir,
                cfg.genesis_path,
                out,
                node_key_path=key_path,
                progress=advance,
                documents=bk.documents_of(cfg, include_key=include_node_key),
            )
        via = "database opened directly (node stopped)"
    except StorageError as err:
        if "LOCK" not in str(err):
            raise click.ClickException(str(err)) from None
        manifest = _backup_through_node(cfg, out, include_node_key)
        via = "snapshot taken by the running node"
    except bk.BackupError as err:
        raise click.ClickException(str(err)) from None
    click.echo(f"wrote {out}: {_describe(manifest)} ({via})")
    if include_node_key:
        click.echo("warning: the backup holds the node key; keep it secret (mode 0600)", err=True)


@click.command(name="restore")
@click.argument("file", type=options.EXISTING_FILE)
@options.home("The new node home to create.", envvar=None, show_envvar=False)
@click.option("--name", default=None, help="Node name [default: the home's name].")
@click.option(
    "--restore-node-key",
    is_flag=True,
    help="Use the node key saved in the backup (only if the old node will never run again); "
    "a document key in the backup is restored either way.",
)
@user_errors
def restore(file: Path, home: Path, name: str | None, restore_node_key: bool) -> None:
    """Restore a backup into a new home; refuses a backup whose checksum is wrong."""
    try:
        manifest = bk.read_manifest(file)
        with _progress("checking", manifest.total_bytes) as advance:
            bk.verify_backup(file, advance)
        with _progress("restoring", manifest.total_bytes) as advance:
            done = bk.restore_backup(
                file, home, name=name, restore_node_key=restore_node_key, progress=advance
            )
    except (bk.BackupError, StorageError) as err:
        raise click.ClickException(str(err)) from None
    click.echo(f"restored {file} into {done.home}: {_describe(manifest)}")
    click.echo(f"  node id {done.node_id}")
    if done.documents:
        click.echo(f"  {done.documents} document files restored")
    for note in done.notes:
        click.echo(f"  note: {note}")
    if not done.node_key_restored:
        click.echo(
            "  this home has a NEW node key: it runs as a non-validator (an observer) that "
            "follows the chain; to take the old validator's place, stop that node for good and "
            "restore with --restore-node-key from a backup made with --include-node-key"
        )
    click.echo(f"  edit {done.home / 'config.toml'} (listen ports, peers), then hygeia start")


@click.command(name="export")
@options.home(None, required=False, envvar=None, show_envvar=False, default=None)
@options.api("Client API URL [default: from the home's config].", required=False, default=None)
@click.option("--disclosures", "patient", metavar="PATIENT_KEY", default=None)
@click.option("--serial", nargs=2, metavar="GTIN SERIAL", default=None)
@click.option("--trial", "trial_id", metavar="TRIAL_ID", default=None)
@click.option("--blocks", "height_range", metavar="FROM:TO", default=None)
@click.option(
    "--key",
    "key_file",
    type=options.EXISTING_FILE,
    default=None,
    help="Sign the reads with this key file: --disclosures needs the patient's, or the "
    "enrolling custodian's, an auditor's or a regulator's (docs/privacy.md).",
)
@click.option("--out", type=options.FILE, required=True)
@user_errors
def export(
    home: Path | None,
    api: str | None,
    patient: str | None,
    serial: tuple[str, str] | None,
    trial_id: str | None,
    height_range: str | None,
    key_file: Path | None,
    out: Path,
) -> None:
    """Write an audit export as JSON Lines; each line names its tx (fetch its proof with
    GET /v1/proofs/<tx> or hygeia client proof <tx>)."""
    chosen = [x for x in (patient, serial, trial_id, height_range) if x]
    if len(chosen) != 1:
        raise click.UsageError("give exactly one of --disclosures, --serial, --trial, --blocks")
    if api is None:
        if home is None:
            raise click.UsageError("give --api URL or --home DIR")
        try:
            api = local_url(load_config(home).api.listen)
        except ConfigError as err:
            raise click.ClickException(str(err)) from None
    base = api.rstrip("/")
    try:
        key = None if key_file is None else load_key(key_file)
    except KeyFileError as err:
        raise click.ClickException(str(err)) from None

    def fetch(path: str) -> Any:
        try:
            if key is not None:
                return signed_request("GET", base + path, None, key)[1]
            return request_json("GET", base + path)
        except ClientError as err:
            if err.status == 404:
                return None
            raise

    try:
        if patient:
            lines = ex.disclosures(fetch, patient)
        elif serial:
            lines = ex.custody(fetch, serial[0], serial[1])
        elif trial_id:
            lines = ex.trial(fetch, trial_id)
        else:
            assert height_range is not None
            lines = ex.blocks(fetch, *ex.parse_range(height_range))
        tmp = out.with_name(out.name + ".partial")
        with open(tmp, "w", encoding="utf-8") as f:
            count = ex.write_lines(lines, f)
        tmp.replace(out)
    except (ex.ExportError, ClientError) as err:
        out.with_name(out.name + ".partial").unlink(missing_ok=True)
        raise click.ClickException(str(err)) from None
    click.echo(f"wrote {count} lines to {out}")


COMMANDS: tuple[click.Command, ...] = (backup, restore, export)
