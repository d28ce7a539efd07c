"""``docs/configuration.md``: the reference of a node home, config.toml, genesis.json, testnet.json.

Rendered from the schemas themselves (``node.setup.config_schema``, ``node.setup.genesis``,
``node.setup.testnet``), so the document cannot drift from what the loaders accept:
``python -m node.setup.reference > docs/configuration.md`` writes it and
``tests/unit/test_config.py`` fails when the file and the code disagree.
"""

from __future__ import annotations

from node.setup import genesis, testnet
from node.setup.config_render import toml_value
from node.setup.config_schema import (
    CONFIG_FILE,
    SECTIONS,
    AdminSection,
    NodeSection,
    plain,
    schema,
)
from node.setup.refdoc import generated_header, table_cell

__all__ = ["render_reference"]


def render_reference() -> str:
    """``docs/configuration.md``: the home layout, config.toml, genesis.json, testnet.json."""
    out = [
        *generated_header(
            "Configuration reference",
            "node/setup/config_schema.py, node/setup/genesis.py and node/setup/testnet.py",
            "node.setup.reference",
            "docs/configuration.md",
            "tests/unit/test_config.py",
        ),
        "## The node home",
        "",
        "`hygeia init --home DIR` creates a node home; every path below is the default",
        "and may be changed in `config.toml` (relative paths are relative to the home).",
        "",
        "| path | what |",
        "|---|---|",
        f"| `{CONFIG_FILE}` | this configuration; always `<home>/{CONFIG_FILE}` |",
        f"| `{NodeSection.node_key_file}` | the node's Ed25519 key, mode 0600 "
        "(`node.node_key_file`); never overwritten without `--force` |",
        f"| `{AdminSection.token_file}` | the admin API bearer token, mode 0600 "
        "(`admin.token_file`) |",
        f"| `{NodeSection.genesis_file}` | the consortium's genesis (`node.genesis_file`); "
        "not created by `init`: every node gets the same file |",
        f"| `{NodeSection.data_dir}/` | the LevelDB database (`node.data_dir`) |",
        "",
        "Key and token files readable or writable by other users are reported by",
        "`hygeia config check` (and at start); fix them with `chmod 600 FILE`.",
        "",
        "## config.toml",
        "",
        "### Precedence",
        "",
        "1. command-line flags;",
        "2. environment variables `HYGEIA_<SECTION>_<KEY>` (upper-case), e.g.",
        "   `HYGEIA_P2P_LISTEN=0.0.0.0:26656`, `HYGEIA_LOG_LEVEL=debug`;",
        f"3. `<home>/{CONFIG_FILE}`;",
        "4. the defaults below.",
        "",
        "A value from a higher level replaces the lower one whole (lists and tables are",
        "not merged). Environment values and flag values are text, parsed by type:",
        "",
        "| type | text form |",
        "|---|---|",
        "| integer | decimal, `_` allowed between digits: `65536`, `64_000` |",
        "| boolean | `true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off` (any case) |",
        "| array | comma-separated, blanks ignored: `ID1@10.0.0.1:26656,ID2@10.0.0.2:26656` |",
        "| table | comma-separated `name=value`: `node.net=debug,consensus=info` |",
        "| string, path, host:port | as is |",
        "",
        "### Errors and checks",
        "",
        "- An unknown section or key in the file is an error naming the file and the closest",
        "  known key: `config.toml: unknown key [p2p] listn (did you mean listen?)`.",
        "- A value of the wrong type is an error naming `section.key`, the expected type and",
        "  the value: `config.toml: p2p.max_frame_bytes: expected an integer, got '4MB'`.",
        "- Limits are positive; `host:port` values are checked (IPv6 as `[::1]:26656`; port 0",
        "  in a listen address picks a free port); the three listeners must not share a port;",
        "  `p2p.dial_backoff_min_ms <= p2p.dial_backoff_max_ms`; `mempool.max_tx_bytes` is at",
        "  most `mempool.max_bytes` and `p2p.max_frame_bytes`.",
        "- A variable `HYGEIA_<SECTION>_<KEY>` of a known section that names no key is",
        "  ignored with a warning (other `HYGEIA_*` variables belong to other tools);",
        "  an admin listener on a non-loopback address gives a warning.",
        "- `hygeia config check --home DIR` runs every check without starting the node,",
        "  including the key and token files and genesis.json;",
        "  `hygeia config show --home DIR` prints the effective configuration (secrets",
        "  redacted) with the origin of every non-default value.",
    ]
    for section, keys in schema().items():
        out += [
            "",
            f"### [{section}]",
            "",
            SECTIONS[section].__doc__ or "",
            "",
            "| key | type | default | environment | description |",
            "|---|---|---|---|---|",
        ]
        for key in keys.values():
            default = toml_value(plain(key.default))
            out.append(
                f"| `{key.name}` | {table_cell(key.kind.label)} | `{table_cell(default)}` "
                f"| `{key.env_var}` | {table_cell(key.doc)} |"
            )
    out += ["", genesis.render_reference().rstrip(), ""]
    out += [testnet.render_reference().rstrip(), ""]
    return "\n".join(out)


if __name__ == "__main__":
    print(render_reference(), end="")
