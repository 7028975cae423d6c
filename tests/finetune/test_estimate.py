"""The memory estimate, in exact bytes for Llama-2-7B's published config. Pure: no database.

Llama-2-7B: hidden 4096, intermediate 11008, 32 layers, 32 heads (no GQA), vocab 32000,
untied embeddings, float16. Its parameter count, 6,738,415,616, and the 16,777,216 trainable
parameters of r=16 LoRA on q/k/v/o are the figures the model card and peft print.
"""

import pytest

from finetune.errors import InvalidRun
from finetune.estimate import Architecture, estimate, fewest_checkpointed, gib
from finetune.training.config import LoraSettings, TrainSettings

LLAMA2_7B = {
    "model_type": "llama",
    "hidden_size": 4096,
    "intermediate_size": 11008,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 32,
    "vocab_size": 32000,
    "tie_word_embeddings": False,
    "torch_dtype": "float16",
}
LORA = LoraSettings(rank=16, alpha=32, target_modules=("q_proj", "k_proj", "v_proj", "o_proj"))
TRAIN = TrainSettings(batch_size=4, max_length=512)
# Per token and layer: 4 x 4096 (norms) + 2 x (32 + 32) x 128 (q, k, v, attention output)
# + 3 x 11008 (gate, up, product) = 65,792; the adapters add 4 x (4096 + 16) = 16,448.
LAYER = 65_792 + 16_448


def test_parameter_count_of_llama_2_7b():
    assert Architecture.from_config(LLAMA2_7B).parameters() == 6_738_415_616


def test_grouped_query_attention_and_tied_embeddings_shrink_the_count():
    config = LLAMA2_7B | {"num_key_value_heads": 8, "tie_word_embeddings": True}
    # k and v shrink from 4096x4096 to 4096x1024 each (2 x 4096 x 3072 fewer per layer, x32),
    # and the output head shares the input embedding (32000 x 4096 fewer).
    expected = 6_738_415_616 - 32 * 2 * 4096 * 3072 - 32000 * 4096
    assert Architecture.from_config(config).parameters() == expected


def test_sft_estimate_in_bytes():
    usage = estimate(LLAMA2_7B, LORA, TRAIN, method="sft")
    tokens = 4 * 512
    assert usage.trainable_parameters == 16_777_216
    assert usage.weights == 6_738_415_616 * 2 == 13_476_831_232
    assert usage.adapter == 16_777_216 * 16 == 268_435_456
    assert usage.activations == tokens * 32 * LAYER * 2 == 10_779_361_280
    assert usage.logits == 2 * tokens * 32000 * 4 == 524_288_000
    assert usage.reference == 0
    assert usage.overhead == 25_048_915_968 // 10 == 2_504_891_596
    assert usage.total == 27_553_807_564
    assert gib(usage.total) == "25.7 GiB"


def test_gradient_checkpointing_keeps_only_layer_inputs():
    train = TrainSettings(batch_size=4, max_length=512, gradient_checkpointing=True)
    usage = estimate(LLAMA2_7B, LORA, train, method="sft")
    assert usage.activations == 2048 * (32 * 4096 + LAYER) * 2 == 873_725_952


def test_checkpoint_layers_recomputes_only_the_first_layers():
    train = TrainSettings(
        batch_size=4, max_length=512, gradient_checkpointing=True, checkpoint_layers=8
    )
    usage = estimate(LLAMA2_7B, LORA, train, method="sft")
    # 8 layers keep their input and 24 everything; the 24 are freed before the 8 recompute.
    assert usage.activations == 2048 * (8 * 4096 + 24 * LAYER) * 2 == 8_218_738_688


def test_fewest_checkpointed_layers_that_fit():
    def fewest(gib_: float):
        memory = int(gib_ * 1024**3)
        return fewest_checkpointed(LLAMA2_7B, LORA, TRAIN, method="sft", memory=memory)

    assert fewest(80) == 0  # 25.7 GiB fits without checkpointing
    # 20 GiB leaves 20 GiB / 1.1 - 14.27 GB (weights, adapter, logits) = 5.25 GB for
    # activations: 4096 bytes a token-layer value x (32 x LAYER - n x (LAYER - 4096)) fits
    # from n = 17.3 on.
    assert fewest(20) == 18
    # One layer recomputed never costs more than none (the held layers are freed first).
    one = TrainSettings(
        batch_size=4, max_length=512, gradient_checkpointing=True, checkpoint_layers=1
    )
    assert estimate(LLAMA2_7B, LORA, one, method="sft").activations < 10_779_361_280
    assert fewest(12) is None  # the weights alone are 12.6 GiB


def test_dpo_doubles_the_tokens_and_adds_the_reference_forward_but_no_second_weights():
    usage = estimate(LLAMA2_7B, LORA, TRAIN, method="dpo")
    tokens = 2 * 4 * 512  # chosen and rejected
    assert usage.weights == 13_476_831_232  # the reference is the base with the adapter off
    assert usage.activations == tokens * 32 * LAYER * 2 == 21_558_722_560
    assert usage.logits == 2 * tokens * 32000 * 4 == 1_048_576_000
    assert usage.reference == tokens * 65_792 * 2 + tokens * 32000 * 4 == 1_063_256_064
    assert usage.total == (13_476_831_232 + 268_435_456 + 21_558_722_560 + 1_048_576_000
                           + 1_063_256_064) * 11 // 10  # fmt: skip


def test_fits_compares_the_total_with_the_device():
    usage = estimate(LLAMA2_7B, LORA, TRAIN, method="sft")
    assert usage.fits(80 * 1024**3) is True
    assert usage.fits(24 * 1024**3) is False


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"hidden_size": None}, "config.json: hidden_size must be a positive integer"),
        ({"num_hidden_layers": 0}, "config.json: num_hidden_layers must be a positive integer"),
        ({"vocab_size": "32000"}, "config.json: vocab_size must be a positive integer"),
        ({"torch_dtype": "int4"}, "config.json: dtype 'int4' is not supported"),
    ],
)
def test_a_bad_config_names_the_field(change, reason):
    config = {k: v for k, v in (LLAMA2_7B | change).items() if v is not None}
    with pytest.raises(InvalidRun) as raised:
        estimate(config, LORA, TRAIN, method="sft")
    assert raised.value.errors == {"base_model": reason}
