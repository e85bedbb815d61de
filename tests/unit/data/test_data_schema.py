"""validate_conversation: properties over generated conversations + each rule's exact text."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from chattune.data.schema import validate_conversation

text = st.text(min_size=1, max_size=20).filter(lambda s: s.strip() != "")


@st.composite
def conversations(draw: st.DrawFn, min_turns: int = 1) -> list[dict[str, str]]:
    """Well-formed: optional system, then user/assistant alternating from user."""
    turns = draw(st.integers(min_value=min_turns, max_value=8))
    messages = [
        {"role": "user" if i % 2 == 0 else "assistant", "content": draw(text)} for i in range(turns)
    ]
    if draw(st.booleans()):
        messages.insert(0, {"role": "system", "content": draw(text)})
    return messages


@given(conversations())
def test_every_well_formed_conversation_is_accepted(messages: list[dict[str, str]]) -> None:
    has_assistant = any(m["role"] == "assistant" for m in messages)
    assert validate_conversation(messages, require_assistant=has_assistant) == []
    assert (
        validate_conversation(
            messages, require_assistant=False, require_user_last=messages[-1]["role"] == "user"
        )
        == []
    )


@given(conversations(min_turns=2), st.data())
def test_two_consecutive_same_roles_are_rejected(
    messages: list[dict[str, str]], data: st.DataObject
) -> None:
    first_turn = 1 if messages[0]["role"] == "system" else 0
    i = data.draw(st.integers(min_value=first_turn, max_value=len(messages) - 1))
    doubled = [*messages[: i + 1], dict(messages[i]), *messages[i + 1 :]]
    problem = f"messages[{i + 1}]: two {messages[i]['role']} turns in a row"
    assert problem in validate_conversation(doubled)


def _user(content: Any = "q") -> dict[str, Any]:
    return {"role": "user", "content": content}


def _assistant(content: Any = "a") -> dict[str, Any]:
    return {"role": "assistant", "content": content}


def test_each_rule_has_its_own_text() -> None:
    system = {"role": "system", "content": "s"}
    cases: list[tuple[Any, list[str]]] = [
        ("hi", ["messages: expected a list of {role, content} objects, got str"]),
        ([], ["messages: empty conversation"]),
        ([_user(), system, _assistant()], ["messages[1]: a system message may only come first"]),
        (
            [system, _assistant()],
            ["messages[1]: the conversation must start with a user turn, got assistant"],
        ),
        (
            [_user(), {"role": "tool", "content": "x"}, _assistant()],
            ["messages[1]: unknown role 'tool' (expected system, user or assistant)"],
        ),
        (
            [{"content": "x"}, _assistant()],
            ["messages[0]: missing 'role' (expected system, user or assistant)"],
        ),
        (
            [_user(None), _assistant(" \n")],
            ["messages[0].content: expected a string, got null", "messages[1].content: empty"],
        ),
        ([_user(), {"role": "assistant"}], ["messages[1]: missing 'content'"]),
        (
            [_user(), 3],
            [
                "messages[1]: expected an object with role and content, got int",
                "messages: no assistant turn (training needs at least one)",
            ],
        ),
    ]
    for messages, expected in cases:
        assert validate_conversation(messages) == expected, messages


def test_serving_side_rules() -> None:
    assert validate_conversation([_user()], require_assistant=False, require_user_last=True) == []
    assert validate_conversation(
        [_user(), _assistant()], require_assistant=False, require_user_last=True
    ) == ["messages[1]: the conversation must end with a user turn"]
