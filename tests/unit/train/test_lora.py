from chattune.catalog.cards import get_card
from chattune.train.finetune import add_lora
from chattune.train.params import TrainParams, effective_parameters


def test_lora_wraps_phi3_fused_projections(tiny_model_dir) -> None:
    from transformers import AutoModelForCausalLM

    defaults = get_card("tiny-random-phi3").tags["model_specific_defaults"]
    params = effective_parameters(TrainParams(), dict(defaults)).params
    model = add_lora(AutoModelForCausalLM.from_pretrained(tiny_model_dir), params)
    wrapped = {name.split(".")[-1] for name, m in model.named_modules() if hasattr(m, "lora_A")}
    assert wrapped == {"qkv_proj", "o_proj", "gate_up_proj", "down_proj"}
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
