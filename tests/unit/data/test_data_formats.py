"""Row formats: detected per file, converted on read, `data convert`, round trips, and a
validator that never raises on arbitrary bytes or JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from chattune.cli.data import app
from chattune.data.formats import from_messages, to_messages
from chattune.data.readers import DataReader, load_conversations
from chattune.data.report import validate_file
from chattune.data.schema import conversation_problems, validate_conversation

runner = CliRunner()

# Shaped like LLaMA-Factory's demo files and OpenAI's fine-tuning files.
SHAREGPT = [
    {
        "conversations": [
            {"from": "human", "value": "What is the capital of France?"},
            {"from": "gpt", "value": "Paris."},
            {"from": "human", "value": "And of Italy?"},
            {"from": "gpt", "value": "Rome."},
        ],
        "system": "Answer in one word.",
    },
    {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello!"}]},
]
ALPACA = [
    {
        "instruction": "Translate to French.",
        "input": "Good morning",
        "output": "Bonjour",
        "system": "You translate.",
        "history": [["Translate to French: cat", "chat"]],
    },
    {"instruction": "Give three primary colours.", "input": "", "output": "Red, blue, yellow."},
]
PROMPT_COMPLETION = [
    {"prompt": "2 + 2 =", "completion": "4"},
    {"prompt": "The sky is", "completion": "blue."},
]
MESSAGES = [
    {
        "messages": [
            {"role": "user", "content": "Say yes."},
            {"role": "assistant", "content": "No.", "weight": 0},
            {"role": "user", "content": "Please."},
            {"role": "assistant", "content": "Yes.", "weight": 1},
        ]
    },
]


def _write(path: Path, rows: list[Any]) -> Path:
    if path.suffix == ".json":
        path.write_text(json.dumps(rows, indent=1))
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_sharegpt_converts_with_system_and_names_its_format(tmp_path: Path) -> None:
    src = _write(tmp_path / "sharegpt.json", SHAREGPT)
    result = runner.invoke(app, ["convert", str(src), str(tmp_path / "out.jsonl"), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["format"] == "sharegpt"
    rows = [json.loads(x) for x in (tmp_path / "out.jsonl").open()]
    assert rows[0]["messages"] == [
        {"role": "system", "content": "Answer in one word."},
        {"role": "user", "content": "What is the capital of France?"},
        {"role": "assistant", "content": "Paris."},
        {"role": "user", "content": "And of Italy?"},
        {"role": "assistant", "content": "Rome."},
    ]
    assert rows[1]["prompt"] == "Hi" and len(rows[1]["prompt_id"]) == 64
    shown = json.loads(runner.invoke(app, ["show", str(src), "--json"]).stdout)
    assert shown["format"] == "sharegpt" and shown["stats"]["rows"] == 2


def test_sharegpt_role_map_and_problems_name_the_users_fields(tmp_path: Path) -> None:
    rows = [{"conversations": [{"from": "me", "value": "Hi"}, {"from": "bot", "value": "Yo"}]}]
    src = _write(tmp_path / "sg.jsonl", rows)
    report = validate_file(src)
    assert [p["text"] for p in report["problems"]][:2] == [
        "line 1 of sg.jsonl: conversations[0]: unknown role 'me' (expected system, user or "
        "assistant)",
        "line 1 of sg.jsonl: conversations[1]: unknown role 'bot' (expected system, user or "
        "assistant)",
    ]
    out = tmp_path / "out.jsonl"
    args = ["convert", str(src), str(out), "--role-map", "me=user", "--role-map", "bot=assistant"]
    assert runner.invoke(app, args).exit_code == 0
    assert [m["role"] for m in json.loads(out.read_text())["messages"]] == ["user", "assistant"]


def test_alpaca_converts_with_system_and_history(tmp_path: Path) -> None:
    src = _write(tmp_path / "alpaca_en_demo.json", ALPACA)
    result = runner.invoke(app, ["convert", str(src), str(tmp_path / "out.jsonl")])
    assert "alpaca → messages" in result.stdout
    rows = [json.loads(x) for x in (tmp_path / "out.jsonl").open()]
    assert rows[0]["messages"] == [
        {"role": "system", "content": "You translate."},
        {"role": "user", "content": "Translate to French: cat"},
        {"role": "assistant", "content": "chat"},
        {"role": "user", "content": "Translate to French.\nGood morning"},
        {"role": "assistant", "content": "Bonjour"},
    ]
    assert rows[1]["messages"][0] == {"role": "user", "content": "Give three primary colours."}


def test_prompt_completion_and_forced_format(tmp_path: Path) -> None:
    src = _write(tmp_path / "pc.jsonl", PROMPT_COMPLETION)
    rows = load_conversations(src)
    assert rows[1].messages == [
        {"role": "user", "content": "The sky is"},
        {"role": "assistant", "content": "blue."},
    ]
    assert rows[0].prompt is None  # a completion prompt is no ultrachat id
    report = validate_file(src, fmt="alpaca")
    assert report["summary"] == {"wrong_shape": 2}
    assert report["problems"][0]["text"] == (
        "line 1 of pc.jsonl: no 'instruction' field (got keys: completion, prompt); this file's "
        "rows are alpaca (--from to choose)"
    )


def test_messages_weight_is_kept_and_checked(tmp_path: Path) -> None:
    src = _write(tmp_path / "w.jsonl", MESSAGES)
    messages = load_conversations(src)[0].messages
    assert messages[1] == {"role": "assistant", "content": "No.", "weight": 0}
    assert "weight" not in messages[3]  # 1 is the default
    bad = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b", "weight": 2}]
    assert validate_conversation(bad) == ["messages[1].weight: expected 0 or 1, got 2"]


def test_a_row_of_another_format_is_a_problem_on_its_line(tmp_path: Path) -> None:
    src = _write(tmp_path / "mixed.jsonl", [SHAREGPT[1], ALPACA[1]])
    reader = DataReader(src)
    records = list(reader)
    assert reader.format == "sharegpt"
    assert records[1].problems[0].kind == "wrong_shape"


def test_convert_writes_nothing_when_a_row_is_bad(tmp_path: Path) -> None:
    src = _write(tmp_path / "a.json", [*ALPACA, {"instruction": "x", "output": ""}])
    result = runner.invoke(app, ["convert", str(src), str(tmp_path / "out.jsonl")])
    assert result.exit_code != 0
    assert "row 3 of a.json: messages[1].content: empty" in str(result.exception)
    assert list(tmp_path.iterdir()) == [src]


# --- properties -------------------------------------------------------------------------

text = st.text(min_size=1, max_size=30).filter(lambda s: s.strip() != "")
one_line = text.filter(lambda s: "\n" not in s)


@st.composite
def sharegpt_rows(draw: st.DrawFn) -> dict[str, Any]:
    pairs = draw(st.integers(min_value=1, max_value=4))
    turns = [{"from": who, "value": draw(text)} for _ in range(pairs) for who in ("human", "gpt")]
    row: dict[str, Any] = {"conversations": turns}
    if draw(st.booleans()):
        row["system"] = draw(text)
    return row


@st.composite
def alpaca_rows(draw: st.DrawFn) -> dict[str, Any]:
    # The instruction holds no newline: it is what separates instruction from input.
    row: dict[str, Any] = {
        "instruction": draw(one_line),
        "input": draw(st.one_of(st.just(""), text)),
        "output": draw(text),
    }
    if draw(st.booleans()):
        row["system"] = draw(text)
    history = draw(st.lists(st.tuples(text, text).map(list), max_size=3))
    if history:
        row["history"] = history
    return row


@given(sharegpt_rows())
def test_sharegpt_rows_convert_to_messages_and_back_without_loss(row: dict[str, Any]) -> None:
    messages, problems = to_messages(row, "sharegpt")
    assert problems == [] and validate_conversation(messages) == []
    assert from_messages(messages, "sharegpt") == row


@given(alpaca_rows())
def test_alpaca_rows_convert_to_messages_and_back_without_loss(row: dict[str, Any]) -> None:
    messages, problems = to_messages(row, "alpaca")
    assert problems == [] and validate_conversation(messages) == []
    assert from_messages(messages, "alpaca") == row


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "messages",
                    "role",
                    "content",
                    "weight",
                    "conversations",
                    "from",
                    "value",
                    "instruction",
                    "input",
                    "output",
                    "history",
                    "system",
                    "prompt",
                    "completion",
                    "x",
                ]
            ),
            inner,
            max_size=5,
        )
    ),
    max_leaves=20,
)


@given(json_values)
def test_the_validator_never_raises_on_any_json(value: Any) -> None:
    problems = conversation_problems(value)
    assert all(p.text for p in problems)
    for fmt in ("messages", "sharegpt", "alpaca", "prompt_completion"):
        messages, _ = to_messages(value, fmt)
        if messages is not None:
            conversation_problems(messages)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300))
def test_the_validator_never_raises_on_any_bytes(tmp_path: Path, data: bytes) -> None:
    for name in ("any.jsonl", "any.json", "any.csv"):
        path = tmp_path / name
        path.write_bytes(data)
        report = validate_file(path)
        assert report["ok"] == (report["errors"] == 0)
