import torch
from hypothesis import given
from hypothesis import strategies as st

from chattune.train.packing import collate, pack
from chattune.train.template import IGNORE, Example


@given(st.lists(st.integers(1, 50), max_size=40), st.integers(50, 120))
def test_pack_places_every_example_once_within_the_limit(lengths: list[int], max_len: int) -> None:
    bins = pack(lengths, max_len)
    assert sorted(i for b in bins for i in b) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in b) <= max_len for b in bins)


def test_collate_mask_is_block_diagonal_causal() -> None:
    a = Example([1, 2, 3], [IGNORE, 2, 3])
    b = Example([4, 5], [IGNORE, 5])
    batch = collate([[a, b], [b]], pad_id=0)
    mask = batch["attention_mask"]
    assert mask.shape == (2, 1, 5, 5)
    assert mask[0, 0, 4, 3] and not mask[0, 0, 4, 2]  # b's 2nd token sees b, not a
    assert not mask[0, 0, 1, 2]  # causal
    assert batch["position_ids"][0].tolist() == [0, 1, 2, 0, 1]
    assert batch["labels"][1].tolist() == [IGNORE, 5, IGNORE, IGNORE, IGNORE]
    assert not mask[1, 0, 0, 3]  # real tokens never see padding


def test_packed_examples_do_not_see_each_other(tiny_model_dir) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    a = Example(list(range(100, 140)), [IGNORE] * 40)
    b = Example(list(range(300, 325)), [IGNORE] * 25)
    batch = collate([[a, b]], pad_id=0)
    with torch.no_grad():
        packed = model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            position_ids=batch["position_ids"],
        ).logits[0]
        alone = model(input_ids=torch.tensor([b.input_ids])).logits[0]
    assert (packed[40:] - alone).abs().max().item() < 1e-4


def test_rows_read_from_a_memory_mapped_split_stay_isolated(tiny_model_dir, tmp_path) -> None:
    """The proof above, with the rows as training reads them: packed from the token store."""
    from transformers import AutoModelForCausalLM

    from chattune.train.packing import PackedRows
    from chattune.train.tokens import SplitWriter, open_split

    a = Example(list(range(100, 140)), [IGNORE] * 40)
    b = Example(list(range(300, 325)), [IGNORE] * 25)
    with SplitWriter(tmp_path / "train.tokens") as out:
        out.add(b.input_ids, b.labels)
        out.add(a.input_ids, a.labels)
        out.commit()
    rows = PackedRows.of(open_split(tmp_path / "train.tokens"), 80, packing=True)
    assert len(rows) == 1 and rows[0] == [a, b]  # longest first: a, then b after it
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    batch = collate([rows[0]], pad_id=0)
    with torch.no_grad():
        packed = model(**{k: v for k, v in batch.items() if k != "labels"}).logits[0]
        alone = model(input_ids=torch.tensor([b.input_ids])).logits[0]
    assert (packed[40:] - alone).abs().max().item() < 1e-4
