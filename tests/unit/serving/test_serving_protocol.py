"""Request parsing: each bad request gets one message naming where the problem is."""

from __future__ import annotations

import json

import pytest

from chattune.serving.http import ApiError
from chattune.serving.protocol import ChatCompletionRequest, ScoreRequest, parse_request


def _score(input_string: object, **parameters: object) -> bytes:
    return json.dumps(
        {"input_data": {"input_string": input_string, "parameters": parameters}, "params": {}}
    ).encode()


def _error(model: type, body: bytes) -> ApiError:
    with pytest.raises(ApiError) as caught:
        parse_request(model, body)
    return caught.value


def user(text: str = "hi") -> dict[str, str]:
    return {"role": "user", "content": text}


def assistant(text: str = "hello") -> dict[str, str]:
    return {"role": "assistant", "content": text}


def test_single_conversation_parses_with_parameters() -> None:
    body = _score(
        [{"role": "system", "content": "be brief"}, user()],
        temperature=0.6,
        top_p=0.9,
        do_sample=True,
        max_new_tokens=64,
    )
    request = parse_request(ScoreRequest, body)
    assert not request.is_batch
    assert [m["role"] for m in request.conversations()[0]] == ["system", "user"]
    assert request.input_data.parameters.max_new_tokens == 64


def test_batch_of_conversations_parses() -> None:
    request = parse_request(ScoreRequest, _score([[user("a")], [user(), assistant(), user()]]))
    assert request.is_batch
    assert [len(c) for c in request.conversations()] == [1, 3]


@pytest.mark.parametrize(
    ("conversation", "message"),
    [
        ([user(), user()], "input_string[0][1]: two user turns in a row"),
        (
            [user(), assistant(), assistant()],
            "input_string[0][2]: two assistant turns in a row",
        ),
        (
            [user(), {"role": "system", "content": "x"}, user()],
            "input_string[0][1]: a system message may only come first",
        ),
        (
            [assistant(), user()],
            "input_string[0][0]: the conversation must start with a user turn",
        ),
        ([user("  ")], "input_string[0][0].content: empty"),
        ([], "input_string[0]: empty conversation"),
    ],
)
def test_bad_conversation_is_422_naming_the_index(conversation: list, message: str) -> None:
    error = _error(ScoreRequest, _score([conversation, [user()]]))
    assert error.status == 422
    assert message in error.message


def test_single_conversation_index_has_no_batch_level() -> None:
    error = _error(ScoreRequest, _score([user(), assistant(), assistant()]))
    assert error.message.startswith("input_string[2]: two assistant turns in a row")


def test_all_problems_are_reported_at_once() -> None:
    error = _error(ScoreRequest, _score([[user(), user()], [assistant()]]))
    assert "input_string[0][1]" in error.message
    assert "input_string[1][0]" in error.message


def test_schema_errors_name_the_field() -> None:
    assert (
        "input_string[0].role: Input should be 'system', 'user' or 'assistant'"
        in _error(ScoreRequest, _score([{"role": "bot", "content": "x"}])).message
    )
    assert (
        "input_data.parameters.temperature"
        in _error(ScoreRequest, _score([user()], temperature=5)).message
    )
    assert (
        "input_data.parameters.beam_width: unknown field"
        in _error(ScoreRequest, _score([user()], beam_width=2)).message
    )
    assert "input_data: Field required" in _error(ScoreRequest, b'{"params": {}}').message


def test_invalid_json_is_400() -> None:
    error = _error(ScoreRequest, b"{not json")
    assert (error.status, error.code) == (400, "invalid_json")
    assert _error(ScoreRequest, b"[1, 2]").message == "request body must be a JSON object"


def test_openai_request_accepts_metadata_and_bounds_n() -> None:
    body = {"model": "m", "messages": [user()], "user": "abc", "metadata": {"a": "b"}}
    body |= {"store": False, "service_tier": "auto", "tools": [], "presence_penalty": 0}
    assert parse_request(ChatCompletionRequest, json.dumps(body).encode()).stream is False
    assert parse_request(ChatCompletionRequest, json.dumps({**body, "n": 2}).encode()).n == 2
    error = _error(ChatCompletionRequest, json.dumps({**body, "n": 9}).encode())
    assert error.message.startswith("n: ")
    error = _error(ChatCompletionRequest, json.dumps({"messages": [user(), user()]}).encode())
    assert error.message == "messages[1]: two user turns in a row"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"top_k": 5}, "top_k: unknown field; chattune endpoints honour no such parameter"),
        ({"tools": [{"type": "function"}]}, "tools: not supported by chattune endpoints (no tool"),
        ({"reasoning_effort": "low"}, "reasoning_effort: not supported by chattune endpoints"),
        ({"store": True}, "store: chattune endpoints keep no completions; remove it"),
        ({"modalities": ["audio"]}, "modalities: only ['text'] is supported"),
        ({"logit_bias": {"x1": 1}}, "logit_bias: keys are token ids (digits), got 'x1'"),
        ({"logit_bias": {"5": 101}}, "logit_bias['5']: a bias from -100 to 100, got 101"),
        ({"presence_penalty": 3}, "presence_penalty: "),
        ({"repetition_penalty": 0}, "repetition_penalty: "),
    ],
)
def test_an_openai_field_no_engine_honours_is_refused_by_name(
    extra: dict[str, object], message: str
) -> None:
    body = {"messages": [user()], **extra}
    error = _error(ChatCompletionRequest, json.dumps(body).encode())
    assert error.message.startswith(message), error.message


def test_bias_and_penalties_are_parsed() -> None:
    body = {"messages": [user()], "logit_bias": {"33": -100, "7": 2.5}, "frequency_penalty": 1}
    request = parse_request(ChatCompletionRequest, json.dumps(body).encode())
    assert request.biases() == ((7, 2.5), (33, -100.0))
    assert (request.frequency_penalty, request.presence_penalty) == (1.0, 0.0)


def test_an_image_part_is_refused_without_a_spurious_empty_content() -> None:
    image = {"type": "image_url", "image_url": {"url": "http://x/y.png"}}
    body = {"messages": [{"role": "user", "content": [image]}]}
    error = _error(ChatCompletionRequest, json.dumps(body).encode())
    assert (
        error.message
        == "messages[0].content[0].type: only 'text' parts are supported, got 'image_url'"
    )


def test_a_final_assistant_turn_is_continued_unless_the_request_asks_for_a_new_turn() -> None:
    ends_with_assistant = [user(), assistant("Sure, here")]
    request = parse_request(ScoreRequest, _score(ends_with_assistant))
    assert request.continues(request.conversations()[0])
    for flags in ({"add_generation_prompt": True}, {"continue_final_message": False}):
        request = parse_request(ScoreRequest, _score(ends_with_assistant, **flags))
        assert not request.continues(request.conversations()[0])
    request = parse_request(ScoreRequest, _score([user()]))
    assert not request.continues(request.conversations()[0])
    chat = {"messages": ends_with_assistant}
    assert parse_request(ChatCompletionRequest, json.dumps(chat).encode()).continues()
    chat["add_generation_prompt"] = True
    assert not parse_request(ChatCompletionRequest, json.dumps(chat).encode()).continues()


def test_continuing_needs_a_final_assistant_turn_and_the_flags_must_agree() -> None:
    error = _error(ScoreRequest, _score([[user()], [user()]], continue_final_message=True))
    assert error.status == 422
    assert error.message == (
        "input_string[0]: parameters.continue_final_message: true needs a conversation that "
        "ends with an assistant turn; input_string[1]: parameters.continue_final_message: true "
        "needs a conversation that ends with an assistant turn"
    )
    both = {"messages": [user(), assistant()], "add_generation_prompt": True}
    both["continue_final_message"] = True
    error = _error(ChatCompletionRequest, json.dumps(both).encode())
    assert error.message == (
        "add_generation_prompt and continue_final_message are both true: set one true (a new "
        "assistant turn, or the final message continued)"
    )
    error = _error(
        ChatCompletionRequest,
        json.dumps({"messages": [user()], "add_generation_prompt": False}).encode(),
    )
    assert "messages: add_generation_prompt: false needs a conversation that ends" in error.message


def test_the_openapi_schema_shows_how_an_answer_starts() -> None:
    from chattune.serving.routes import openapi_kwargs

    bodies = [
        openapi_kwargs(path)["openapi_extra"]["requestBody"]
        for path in ("/score", "/v1/chat/completions")
    ]
    schemas = json.dumps(bodies)
    for name in ("add_generation_prompt", "continue_final_message"):
        assert schemas.count(f'"{name}"') == 2  # /score parameters and the OpenAI body
