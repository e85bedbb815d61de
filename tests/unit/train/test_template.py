import pytest

from chattune.errors import ValidationError
from chattune.train.template import IGNORE, tokenize_conversation

CONV = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi there"},
    {"role": "assistant", "content": "Hello! How can I help?"},
    {"role": "user", "content": "Nothing"},
    {"role": "assistant", "content": "OK."},
]


def _trained_text(tokenizer, ex) -> str:
    return tokenizer.decode(
        [t for t, lab in zip(ex.input_ids, ex.labels, strict=True) if lab != IGNORE]
    )


def test_loss_only_on_assistant_turns_with_end_token(tiny_tokenizer) -> None:
    ex = tokenize_conversation(tiny_tokenizer, CONV)
    text = _trained_text(tiny_tokenizer, ex)
    assert "Hello! How can I help?<|end|>" in text
    assert "OK.<|end|>" in text
    assert "Hi there" not in text and "Nothing" not in text and "<|user|>" not in text


def test_phi3_template_folds_system_into_first_user_turn(tiny_tokenizer) -> None:
    ex = tokenize_conversation(tiny_tokenizer, CONV)
    assert "Be brief.\n\nHi there" in tiny_tokenizer.decode(ex.input_ids)


def test_truncation_keeps_the_prefix(tiny_tokenizer) -> None:
    full = tokenize_conversation(tiny_tokenizer, CONV)
    cut = tokenize_conversation(tiny_tokenizer, CONV, max_len=20)
    assert cut.input_ids == full.input_ids[:20]
    assert cut.labels == full.labels[:20]


def test_template_that_is_not_prefix_stable_is_rejected() -> None:
    class Odd:
        chat_template = "x"

        def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=False):
            return "".join(m["content"] for m in reversed(messages))

        def __call__(self, texts, add_special_tokens=False, return_offsets_mapping=False):
            return {  # one token per character
                "input_ids": [[ord(c) for c in t] for t in texts],
                "offset_mapping": [[(i, i + 1) for i in range(len(t))] for t in texts],
            }

    with pytest.raises(ValidationError, match="prefix by prefix"):
        tokenize_conversation(
            Odd(), [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]
        )
