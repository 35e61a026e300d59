"""Tiny random-initialised variants of every family, for tests and smoke runs (no download).

Each ``tiny-<family>`` is built from its transformers config class (hidden 64, 2 layers, 4 heads, GQA
where the family has it) with a fixed seed, saved once into ``$MEIT_CACHE/models/tiny-<family>-v1``
with a small byte-level BPE tokenizer (1,024 entries) trained deterministically on a built-in ECG
vocabulary, and loaded from there like any other checkpoint.
"""

from __future__ import annotations

from pathlib import Path

from meit.cache_build import cached_build
from meit.models.backbones import FAMILIES, BackboneSpec

TINY_SEED = 1234
TINY_VERSION = 1
TOKENIZER_VOCAB = 1024

PAD, BOS, EOS, UNK, ECG = "<pad>", "<s>", "</s>", "<unk>", "<ecg>"
USER, ASSISTANT = "<|user|>", "<|assistant|>"
SPECIAL_TOKENS = [PAD, BOS, EOS, UNK, ECG, USER, ASSISTANT]

# A simple role-tagged chat template (ids are ordinary tokens of the tiny tokenizer).
TINY_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\n' + message['content'] + '</s>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)

# Words a tiny model sees in smoke runs; BPE merges learned from them keep sequences short.
_WORDS_TEXT = """
sinus rhythm normal ecg abnormal borderline within limits left right axis deviation bundle branch block
incomplete complete anterior posterior inferior lateral septal wall myocardial infarction age undetermined
possible probable old acute injury ischemia st elevation depression t wave inversion changes nonspecific
repolarization abnormality atrial fibrillation flutter premature ventricular complexes supraventricular
tachycardia bradycardia first degree av block prolonged qt interval short pr low voltage qrs hypertrophy
enlargement pacemaker paced sinus arrhythmia marked consider lead leads i ii iii avr avl avf v1 v2 v3 v4
v5 v6 with and or of the in a no significant change compared to previous tracing rate beats per minute
bpm ms mv amplitude duration morphology poor r progression early transition late q waves pathologic
describe this electrocardiogram write clinical report for given signal interpret what does show please
summarise findings provide diagnosis heart patient twelve recording reading cardiac rhythm conduction
ECG EKG QRS ST PR QT AV LBBB RBBB LAFB LVH RVH AF SR Describe Write Interpret What The This Sinus
"""
_WORDS = _WORDS_TEXT.split()


def _corpus() -> list[str]:
    lines = []
    for i in range(len(_WORDS)):
        lines.append(" ".join(_WORDS[i : i + 12]))
        lines.append(" ".join(_WORDS[i : i + 5]).capitalize() + ".")
    lines.append("0123456789 , . : ; - / ( ) % ' \"")
    return lines


def build_tiny_tokenizer():
    """A deterministic byte-level BPE tokenizer (offline, no download) as a transformers tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=TOKENIZER_VOCAB,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token=PAD, bos_token=BOS, eos_token=EOS, unk_token=UNK,
        additional_special_tokens=[ECG, USER, ASSISTANT],
    )
    fast.chat_template = TINY_CHAT_TEMPLATE
    return fast


def _build_tiny(spec: BackboneSpec, out: Path) -> None:
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, GenerationConfig

    fam = FAMILIES[spec.family]
    tokenizer = build_tiny_tokenizer()
    config_cls = getattr(transformers, fam.config_class)
    vocab = len(tokenizer)
    ids = dict(
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    # untied output head: a tied random head keeps repeating the last token, which makes greedy
    # decoding tests weak
    config = config_cls(vocab_size=vocab, tie_word_embeddings=False, **fam.tiny_config, **ids)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(TINY_SEED)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.generation_config = GenerationConfig(**ids)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)


def tiny_path(spec: BackboneSpec) -> Path:
    """Folder of the tiny variant of ``spec.family`` (built on first use, ~1 s)."""
    import transformers

    stamp = {"family": spec.family, "version": TINY_VERSION, "transformers": transformers.__version__.split(".")[0]}
    return cached_build(f"{spec.name}-v{TINY_VERSION}", stamp, lambda out: _build_tiny(spec, out))
