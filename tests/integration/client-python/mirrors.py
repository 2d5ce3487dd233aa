"""The client suites' mapping: which Rust test of tests/integration each client test mirrors.

Both client suites (this one and ../client-typescript, whose mirrors.ts does the same checks) read
tests/integration/client-mirrors.json. A client test replays the recordings of the Rust test it
mirrors: it sends that test's id in Llama Stack's `X-LlamaStack-Provider-Data` header and the same
requests, so the stack sends the provider what the Rust test sent and the recorder finds the
Rust test's recordings. The models it uses come from the id's parameters (`[txt=...]`).

Checked when the suite is collected, so a rename fails with a message instead of a replay miss:
every client test has an entry; every entry names a Rust test that tests/integration/main.rs lists
and its file defines; an entry that replays recordings names a test that has some in recordings/;
an entry of a collected file names a test that exists.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

INTEGRATION_DIR = Path(__file__).resolve().parent.parent
ROOT = INTEGRATION_DIR.parent.parent
MIRRORS_FILE = INTEGRATION_DIR / "client-mirrors.json"
PROVIDER_DATA_HEADER = "X-LlamaStack-Provider-Data"

# The model kinds of a Rust test id's parameters (harness::testkit::ModelKind::id_prefix).
KINDS = ("txt", "vis", "cmpl", "emb", "shield", "judge", "rerank")
_ID = re.compile(r"^(?P<file>[\w./-]+\.rs)::(?P<fn>\w+)(?:\[(?P<params>.*)\])?$")
_PARAM_SPLIT = re.compile(r":(?=(?:%s)=)" % "|".join(KINDS))
# A blob is pretty-printed with a fixed field order (docs/recordings.md): test_id is near the top.
_BLOB_TEST_ID = re.compile(r'"test_id":\s*("(?:[^"\\]|\\.)*"|null)')

LIST_IDS_HINT = (
    "the Rust test ids: `cargo run -q -p harness --bin recordings -- list` (recorded ones) or "
    "`scripts/integration-tests.sh --collect-only` (all)"
)


class MirrorError(Exception):
    """A problem with the mapping; the message says what to change."""


@dataclass(frozen=True)
class Mirror:
    """One client test's entry: the Rust test it mirrors and the models in that test's id."""

    key: str
    rust_id: str | None
    recorded: bool
    models: dict[str, str] = field(default_factory=dict)

    def model(self, kind: str) -> str:
        """The model of `kind` (txt, cmpl, emb, shield, ...) in the mirrored test's id."""
        if kind not in self.models:
            raise MirrorError(f"{self.key} mirrors {self.rust_id!r}, which has no {kind}= parameter")
        return self.models[kind]

    def embedding_dimension(self) -> int:
        """The dimension of the mirrored test's embedding model, as the setup that recorded it says
        (suites.toml: the setup whose default embedding model it is)."""
        import tomllib

        setups = tomllib.loads((ROOT / "suites.toml").read_text(encoding="utf-8")).get("setups", {})
        for setup in setups.values():
            defaults = setup.get("defaults", {})
            if defaults.get("embedding_model") == self.model("emb") and "embedding_dimension" in defaults:
                return int(defaults["embedding_dimension"])
        raise MirrorError(f"no setup of suites.toml gives the dimension of {self.model('emb')}")

    def provider_data(self, fresh_run: bool = False) -> dict[str, str]:
        """What Llama Stack's clients send in X-LlamaStack-Provider-Data: the test id. With
        `fresh_run`, also a new `__test_run` nonce (the harness's extension): the stack then starts
        the ids it generates for this test (MCP call ids, which it sends back to the provider) at 0
        again, as in one execution of the Rust test."""
        if self.rust_id is None:
            return {}
        data = {"__test_id": self.rust_id}
        if fresh_run:
            data["__test_run"] = f"client-{uuid.uuid4().hex}"
        return data


def parse_models(rust_id: str) -> dict[str, str]:
    m = _ID.match(rust_id)
    if not m:
        raise MirrorError(f"{rust_id!r} is not a Rust test id (area/file.rs::test_fn[kind=model:...])")
    params = m.group("params")
    if not params:
        return {}
    models = {}
    for part in _PARAM_SPLIT.split(params):
        kind, _, value = part.partition("=")
        if kind not in KINDS or not value:
            raise MirrorError(f"{rust_id!r}: parameter {part!r} is not kind=model with a kind of {KINDS}")
        models[kind] = value
    return models


def recordings_dir() -> Path:
    configured = os.environ.get("LLAMA_STACK_TEST_RECORDING_DIR")
    return Path(configured) if configured else ROOT / "recordings"


@cache
def recorded_test_ids() -> frozenset[str]:
    """The test ids of every recording, read from the blobs (the source of truth)."""
    responses = recordings_dir() / "responses"
    ids = set()
    for blob in responses.glob("*.json"):
        with blob.open(encoding="utf-8") as f:
            head = f.read(4096)
        m = _BLOB_TEST_ID.search(head)
        if m and m.group(1) != "null":
            ids.add(json.loads(m.group(1)))
    return frozenset(ids)


def rust_test_problem(rust_id: str) -> str | None:
    """Why `rust_id` names no test of the Rust suite, or None."""
    m = _ID.match(rust_id)
    if not m:
        return "not a Rust test id (area/file.rs::test_fn[kind=model:...])"
    path = INTEGRATION_DIR / m.group("file")
    if not path.is_file():
        return f"{path.relative_to(ROOT)} does not exist"
    if not re.search(r"\bfn\s+%s\s*\(" % re.escape(m.group("fn")), path.read_text(encoding="utf-8")):
        return f"{path.relative_to(ROOT)} defines no {m.group('fn')}"
    module_path = m.group("file")[: -len(".rs")].replace("/", "::") + "::" + m.group("fn")
    if module_path not in (INTEGRATION_DIR / "main.rs").read_text(encoding="utf-8"):
        return f"not a case of the suite (tests/integration/main.rs does not list {module_path})"
    return None


@dataclass(frozen=True)
class Table:
    """The entries of client-mirrors.json that are sound, and what is wrong with the others."""

    mirrors: dict[str, Mirror]
    problems: tuple[tuple[str | None, str], ...]  # (entry key, or None for the file; what is wrong)
    keys: frozenset[str] = frozenset()  # every entry, sound or not


@cache
def load() -> Table:
    """Every entry of client-mirrors.json, validated."""
    try:
        raw = json.loads(MIRRORS_FILE.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        return Table({}, ((None, f"cannot read {MIRRORS_FILE.relative_to(ROOT)}: {e}"),))
    entries = raw.get("mirrors") if isinstance(raw, dict) else None
    if not isinstance(entries, dict):
        return Table({}, ((None, f'{MIRRORS_FILE.relative_to(ROOT)} has no "mirrors" object'),))
    mirrors, problems = {}, []
    recorded_ids = recorded_test_ids()
    for key, value in entries.items():
        if isinstance(value, str):
            rust_id, recorded = value, True
        elif isinstance(value, dict) and "rust" in value and set(value) <= {"rust", "recorded", "why"}:
            rust_id, recorded = value["rust"], value.get("recorded", True)
            if rust_id is None and not value.get("why"):
                problems.append((key, f'{key}: "rust": null needs a "why" (the Rust test it should mirror '
                                      f'does not exist yet)'))
                continue
        else:
            problems.append((key, f'{key}: the value is a Rust test id, or {{"rust": ID, "recorded": false}} '
                                  f'for a test that reaches no provider, or {{"rust": null, "why": ...}}'))
            continue
        if rust_id is not None:
            why = rust_test_problem(rust_id)
            if why:
                problems.append((key, f"{key} mirrors {rust_id!r}: {why}. Fix the entry ({LIST_IDS_HINT})"))
                continue
            if recorded and rust_id not in recorded_ids:
                problems.append((key,
                    f"{key} mirrors {rust_id!r}, which has no recordings in {recordings_dir()}: its "
                    f"parameters (models) differ from the recorded ones, or it is not recorded yet. Use "
                    f"a recorded id ({LIST_IDS_HINT}), or record the Rust test with a live provider "
                    f"(scripts/integration-tests.sh --inference-mode record-if-missing --pattern "
                    f"'{rust_id}'); if the client test reaches no provider, write "
                    f'{{"rust": "{rust_id}", "recorded": false}}'))
                continue
        try:
            models = parse_models(rust_id) if rust_id else {}
        except MirrorError as e:
            problems.append((key, f"{key}: {e}"))
            continue
        mirrors[key] = Mirror(key, rust_id, bool(recorded), models)
    return Table(mirrors, tuple(problems), frozenset(entries))


def describe(problems: list[str]) -> str:
    lines = [f"{MIRRORS_FILE.relative_to(ROOT)}: {len(problems)} problem(s):"]
    lines += [f"  - {p}" for p in problems]
    lines.append("See docs/testing.md, 'Client suites'.")
    return "\n".join(lines)


def missing_entry(key: str) -> str:
    return (f'{key} has no entry: add "{key}": "<id of the Rust test whose recordings it replays>" '
            f'to "mirrors" ({LIST_IDS_HINT})')
