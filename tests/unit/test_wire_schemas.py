"""The wire contract's documents keep step with the code: schemas, reference, subjects, codes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import msgpack
import pytest

from swarmhub import bus, roles, schemas, subjects, wire_schemas
from swarmhub.errors import HTTP_STATUS, ErrorCode
from tests.conftest import REPO

DOC = REPO / "docs" / "PROTOCOL.md"
SCHEMAS = REPO / "docs" / "schemas"


def doc_text() -> str:
    return DOC.read_text(encoding="utf-8")


def doc_block(marker: str, language: str) -> str:
    """The first fenced block of `language` after `<!-- protocol:MARKER -->` in PROTOCOL.md."""
    # Other markers (e.g. `<!-- example:script -->` of the docs runner) may sit in between.
    pattern = rf"<!-- protocol:{marker} -->\s*(?:<!-- [^>]*-->\s*)*```{language}\n(.+?)\n```"
    match = re.search(pattern, doc_text(), re.S)
    assert match, f"PROTOCOL.md has no {language} block marked protocol:{marker}"
    return match.group(1)


def test_committed_schemas_and_reference_match_the_models() -> None:
    # Given the committed files, when the generator checks them, then nothing is out of step.
    assert wire_schemas.out_of_step(SCHEMAS, DOC) == [], (
        "run `python -m swarmhub.wire_schemas` and commit the result"
    )


def test_every_message_model_has_a_schema_file_and_a_reference_section() -> None:
    names = {model.__name__ for model in wire_schemas.wire_models()}
    assert {"Task", "TaskResult", "ErrorInfo", "DeadLetter"} <= names
    assert {p.stem for p in SCHEMAS.glob("*.json")} == names
    for name in names:
        assert f"### `{name}`" in doc_text()
        schema = json.loads((SCHEMAS / f"{name}.json").read_text())
        assert schema["additionalProperties"] is False, f"{name} must reject unknown fields"


def test_check_names_stale_missing_and_unexpected_files(tmp_path: Path) -> None:
    # Given a freshly written copy of the schemas and the document
    out, doc = tmp_path / "schemas", tmp_path / "PROTOCOL.md"
    doc.write_text(f"intro\n{wire_schemas.BEGIN}\nold\n{wire_schemas.END}\ntail\n")
    assert wire_schemas.main(["--dir", str(out), "--doc", str(doc)]) == 0
    assert wire_schemas.main(["--check", "--dir", str(out), "--doc", str(doc)]) == 0
    assert doc.read_text().startswith("intro\n") and doc.read_text().endswith("tail\n")
    # When one file drifts, one goes missing and a stray one appears
    (out / "Task.json").write_text("{}\n")
    (out / "Ack.json").unlink()
    (out / "Gone.json").write_text("{}\n")
    # Then --check fails naming each of them, and writing repairs all three
    assert wire_schemas.out_of_step(out, doc) == [
        f"{out / 'Ack.json'}: missing",
        f"{out / 'Gone.json'}: unexpected",
        f"{out / 'Task.json'}: stale",
    ]
    assert wire_schemas.main(["--check", "--dir", str(out), "--doc", str(doc)]) == 1
    assert wire_schemas.main(["--dir", str(out), "--doc", str(doc)]) == 0
    assert wire_schemas.out_of_step(out, doc) == []


def test_check_fails_with_a_sentence_when_the_document_has_no_markers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = tmp_path / "PROTOCOL.md"
    doc.write_text("no markers here\n")
    assert wire_schemas.main(["--check", "--dir", str(tmp_path), "--doc", str(doc)]) == 1
    assert "has no" in capsys.readouterr().err


def test_schema_files_are_stable_text() -> None:
    for path in SCHEMAS.glob("*.json"):
        text = path.read_text(encoding="utf-8")
        assert text.endswith("}\n") and not text.endswith("\n\n")
        assert (
            text
            == json.dumps(json.loads(text), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        )


def _subject_names() -> set[str]:
    """Every name subjects.py defines: constants, templates, derived stream and API subjects."""
    names = {
        value for name, value in vars(subjects).items() if name.isupper() and isinstance(value, str)
    }
    names |= {re.sub(r"\{(\w+)\}", r"<\1>", t) for t in subjects.TEMPLATES.values()}
    names |= {
        subjects.kv_stream(b)
        for b in (subjects.RESULTS_BUCKET, subjects.AGENTS_BUCKET, subjects.LEADER_BUCKET)
    }
    names.add(subjects.consumer_next(subjects.TASK_STREAM, subjects.ROUTER_CONSUMER))
    names |= {subjects.lane_consumer(lane) for lane in subjects.LANES}
    names |= {subjects.lane_filter(lane) for lane in subjects.LANES}
    names |= {subjects.srv_subjects(verb, "x", "y")[0] for verb in ("PING", "INFO", "STATS")}
    return names


def test_the_document_names_every_subject_stream_and_bucket() -> None:
    missing = sorted(name for name in _subject_names() if f"`{name}`" not in doc_text())
    assert missing == [], f"docs/PROTOCOL.md does not mention {missing}"


def test_the_document_lists_what_a_client_may_publish_and_subscribe() -> None:
    # A stand-in user name, shown in the document as `<user>`
    user = "u1s2e3r"
    own_publish, own_subscribe = roles.tenant_subjects(user)
    allowed = [
        *roles.CLIENT.publish,
        *roles.CLIENT.subscribe,
        *own_publish,
        *own_subscribe,
        f"{roles.inbox_prefix(user)}.>",
    ]
    named = [subject.replace(user, "<user>") for subject in allowed]
    missing = [subject for subject in named if f"`{subject}`" not in doc_text()]
    assert missing == [], f"docs/PROTOCOL.md does not list client permissions {missing}"


def test_the_document_gives_every_error_code_with_its_status() -> None:
    for code in ErrorCode:
        assert f"| `{code.value}` | {HTTP_STATUS[code]} |" in doc_text(), code


def test_the_document_names_every_header_and_result_status() -> None:
    headers = [bus.HDR_MSG_ID, bus.HDR_CONTENT_TYPE, bus.HDR_ERROR, bus.HDR_ERROR_CODE]
    for name in [*headers, bus.HDR_ERROR_KIND, *(s.value for s in schemas.ResultStatus)]:
        assert f"`{name}" in doc_text(), name


def test_the_documented_example_task_is_the_bytes_it_shows() -> None:
    # Given the example task and its hex dump (comments after `#`) in the document
    task = json.loads(doc_block("example-task", "json"))
    match = re.search(r"<!-- protocol:example-task -->.+?```text\n(.+?)\n```", doc_text(), re.S)
    assert match
    dump = "".join(line.split("#", 1)[0] for line in match.group(1).splitlines())
    # Then it packs to exactly those bytes, and the hub accepts it as a Task
    assert msgpack.packb(task, use_bin_type=True) == bytes.fromhex(dump)
    assert schemas.Task.model_validate(task).created_at == 1767225600.5
