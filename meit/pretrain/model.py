"""An ECG encoder and a text encoder projected into one embedding space (MERL/CLIP-style).

``save_pretrained(dir)`` writes a folder that is, at once, an encoder artifact ``meit train`` accepts
(``encoder.safetensors`` + ``encoder.json``) and a retrieval / zero-shot model
(``heads.safetensors``, ``text_encoder/``, ``pretrain.json``) that :meth:`EcgTextModel.from_pretrained`
reads back. Embeddings are L2-normalised, so dot products are cosine similarities.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from meit.errors import ConfigError, ModelError
from meit.models.encoders import ECGEncoder, EncoderContract, build_encoder, load_encoder_checkpoint
from meit.models.encoders.artifact import fill_encoder_artifact, read_encoder_metadata
from meit.publish import staged_folder

FORMAT = "meit-ecg-text"
VERSION = 1


@dataclass
class PretrainOutput:
    ecg: torch.Tensor  # [B, D], normalised
    text: torch.Tensor  # [B, D], normalised
    logit_scale: torch.Tensor  # scalar, exp() already applied
    reconstruction: torch.Tensor | None = None  # [B, leads, T] when the decoder is on


class SignalDecoder(nn.Module):
    """Time tokens → the whole signal: each token predicts its own stretch of every lead (a linear map)."""

    def __init__(self, width: int, leads: int, samples: int, tokens: int) -> None:
        super().__init__()
        self.leads, self.samples = leads, samples
        self.span = math.ceil(samples / tokens)
        self.proj = nn.Linear(width, leads * self.span)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        batch, count, _ = tokens.shape
        out = self.proj(tokens).view(batch, count, self.leads, self.span)
        out = out.permute(0, 2, 1, 3).reshape(batch, self.leads, count * self.span)
        if out.shape[-1] < self.samples:
            out = F.pad(out, (0, self.samples - out.shape[-1]))
        return out[..., : self.samples]


class EcgTextModel(nn.Module):
    def __init__(
        self,
        encoder: ECGEncoder,
        encoder_name: str,
        text_model: nn.Module,
        tokenizer: Any,
        *,
        embed_dim: int = 256,
        temperature: float = 0.07,
        learn_temperature: bool = True,
        text_max_length: int = 128,
        text_pooling: str = "mean",
        reconstruct: bool = False,
        encoder_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.encoder_name = encoder_name
        # builder kwargs travel in encoder.json so the artifact rebuilds the same architecture
        self.encoder_kwargs = dict(encoder_kwargs if encoder_kwargs is not None else
                                   getattr(encoder, "builder_kwargs", {}))
        self.text_model = text_model
        self.tokenizer = tokenizer
        self.embed_dim = embed_dim
        self.text_max_length = text_max_length
        self.text_pooling = text_pooling
        width = encoder.out_dim
        self.ecg_head = nn.Sequential(nn.Linear(width, width), nn.GELU(), nn.Linear(width, embed_dim))
        self.text_head = nn.Linear(text_model.config.hidden_size, embed_dim)
        for name, param in text_model.named_parameters():
            if name.startswith("pooler."):  # BERT's pooler is never used: a trainable unused part breaks DDP
                param.requires_grad_(False)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / temperature)), requires_grad=learn_temperature)
        self.decoder: SignalDecoder | None = None
        if reconstruct:
            c = encoder.contract
            self.decoder = SignalDecoder(width, c.leads, c.samples, self._token_count())

    # --------------------------------------------------------------------------------------------
    # construction

    @classmethod
    def build(cls, recipe: Any) -> EcgTextModel:
        """From a :class:`~meit.pretrain.config.PretrainRecipe`."""
        from meit.models.text import load_text_encoder

        encoder = build_encoder(recipe.ecg.encoder, recipe.ecg.contract(recipe.data))
        objective = recipe.objective
        if encoder.contract.is_image and (objective.mask_ratio > 0 or objective.reconstruction_weight > 0):
            raise ConfigError(
                f"objective.mask_ratio / objective.reconstruction_weight mask and rebuild the signal, but encoder "
                f"'{recipe.ecg.encoder}' reads a {encoder.contract.image_mode} image: set both to 0 (contrastive only)")
        if recipe.ecg.checkpoint:
            load_encoder_checkpoint(encoder, recipe.ecg.checkpoint)
        text_model, tokenizer = load_text_encoder(
            recipe.text.model, dropout=recipe.text.dropout, trust_remote_code=recipe.text.trust_remote_code
        )
        model = cls(
            encoder, recipe.ecg.encoder, text_model, tokenizer,
            embed_dim=recipe.objective.embed_dim,
            temperature=recipe.objective.temperature,
            learn_temperature=recipe.objective.learn_temperature,
            text_max_length=recipe.text.max_length,
            text_pooling=recipe.text.pooling,
            reconstruct=recipe.objective.reconstruction_weight > 0,
        )
        model.freeze_text_layers(recipe.text.freeze_layers)
        return model

    def _token_count(self) -> int:
        """How many time tokens the encoder makes for one contract-sized input (one dry pass)."""
        c = self.encoder.contract
        was_training = self.encoder.training
        self.encoder.eval()
        with torch.no_grad():
            tokens, _ = self.encoder.encode(torch.zeros(1, *c.input_shape))
        self.encoder.train(was_training)
        return tokens.shape[1]

    def freeze_text_layers(self, count: int) -> None:
        """Freeze the text embeddings and the first ``count`` transformer layers (-1: the whole text encoder)."""
        if count == 0:
            return
        if count < 0:
            self.text_model.requires_grad_(False)
            return
        embeddings = getattr(self.text_model, "embeddings", None)
        layers = _text_layers(self.text_model)
        if embeddings is None or layers is None:
            raise ModelError(
                f"text.freeze_layers={count}: cannot find the embeddings/layers of {type(self.text_model).__name__}; "
                "use 0 or -1"
            )
        if count > len(layers):
            raise ModelError(f"text.freeze_layers={count}, but the text encoder has only {len(layers)} layers")
        embeddings.requires_grad_(False)
        for layer in layers[:count]:
            layer.requires_grad_(False)

    # --------------------------------------------------------------------------------------------
    # forward

    @property
    def contract(self) -> EncoderContract:
        return self.encoder.contract

    def encode_ecg(self, ecg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised ECG embeddings ``[B, D]`` and the encoder's time tokens."""
        self.encoder.check_input(ecg)
        tokens, pooled = self.encoder.encode(ecg)
        return F.normalize(self.ecg_head(pooled), dim=-1), tokens

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Normalised report embeddings ``[B, D]`` (mean over real tokens, or the first token)."""
        hidden = self.text_model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        if self.text_pooling == "cls":
            pooled = hidden[:, 0]
        else:
            weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        return F.normalize(self.text_head(pooled), dim=-1)

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        encoded = self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=self.text_max_length, return_tensors="pt"
        )
        return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}

    def forward(self, ecg: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> PretrainOutput:
        ecg_emb, tokens = self.encode_ecg(ecg)
        text_emb = self.encode_text(input_ids, attention_mask)
        reconstruction = self.decoder(tokens) if self.decoder is not None else None
        return PretrainOutput(ecg_emb, text_emb, self.logit_scale.exp().clamp(max=100.0), reconstruction)

    @torch.no_grad()
    def embed_ecgs(self, ecg: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
        """Embeddings of a stack of contract-shaped ECGs, in eval mode, on the model's device."""
        self.eval()
        device = self.logit_scale.device
        parts = [self.encode_ecg(ecg[i:i + batch_size].to(device))[0].float().cpu()
                 for i in range(0, len(ecg), batch_size)]
        return torch.cat(parts) if parts else torch.zeros(0, self.embed_dim)

    @torch.no_grad()
    def embed_texts(self, texts: Sequence[str], batch_size: int = 64) -> torch.Tensor:
        """Embeddings of report texts (or prompts), in eval mode."""
        self.eval()
        device = self.logit_scale.device
        parts = []
        for i in range(0, len(texts), batch_size):
            inputs = {k: v.to(device) for k, v in self.tokenize(texts[i:i + batch_size]).items()}
            parts.append(self.encode_text(**inputs).float().cpu())
        return torch.cat(parts) if parts else torch.zeros(0, self.embed_dim)

    # --------------------------------------------------------------------------------------------
    # artifact

    def _meta(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "embed_dim": self.embed_dim,
            "text_max_length": self.text_max_length,
            "text_pooling": self.text_pooling,
            "reconstruct": self.decoder is not None,
            "learn_temperature": bool(self.logit_scale.requires_grad),
        }

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write the encoder artifact plus heads and text encoder, atomically (:mod:`meit.publish`)."""
        from safetensors.torch import save_file

        with staged_folder(directory, "pretrained ECG-text model", also_owned_if=("pretrain.json",)) as tmp:
            fill_encoder_artifact(tmp, self.encoder_name, self.encoder, self.encoder.contract, self.encoder_kwargs,
                                  source={"made_by": "meit pretrain"})
            heads = {f"ecg_head.{k}": v for k, v in self.ecg_head.state_dict().items()}
            heads |= {f"text_head.{k}": v for k, v in self.text_head.state_dict().items()}
            heads["logit_scale"] = self.logit_scale.detach().reshape(1)
            if self.decoder is not None:
                heads |= {f"decoder.{k}": v for k, v in self.decoder.state_dict().items()}
            save_file({k: v.detach().contiguous().cpu() for k, v in heads.items()}, str(tmp / "heads.safetensors"))
            self.text_model.save_pretrained(tmp / "text_encoder")
            self.tokenizer.save_pretrained(tmp / "text_encoder")
            (tmp / "pretrain.json").write_text(json.dumps(self._meta(), indent=2))
        return Path(directory)

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> EcgTextModel:
        """Read a folder written by :meth:`save_pretrained` (safetensors only; nothing is unpickled)."""
        from safetensors.torch import load_file
        from transformers import AutoModel, AutoTokenizer

        root = Path(directory).expanduser()
        meta_file = root / "pretrain.json"
        if not meta_file.is_file():
            raise ModelError(
                f"{root} is not a pretrained ECG–text model (no pretrain.json); it should be the final/ folder "
                "of `meit pretrain`"
            )
        meta = json.loads(meta_file.read_text())
        if meta.get("format") != FORMAT:
            raise ModelError(f"{meta_file}: format is {meta.get('format')!r}, expected {FORMAT!r}")
        enc_meta = read_encoder_metadata(root)
        if enc_meta is None:
            raise ModelError(f"{root} lacks encoder.json (an incomplete pretraining artifact)")
        encoder = build_encoder(enc_meta.encoder, enc_meta.contract, **enc_meta.kwargs)
        load_encoder_checkpoint(encoder, root)
        text_dir = root / "text_encoder"
        try:
            text_model = AutoModel.from_pretrained(text_dir)
            tokenizer = AutoTokenizer.from_pretrained(text_dir)
        except OSError as err:
            raise ModelError(f"cannot load the text encoder in {text_dir}: {err}") from err
        model = cls(
            encoder, enc_meta.encoder, text_model, tokenizer,
            embed_dim=int(meta["embed_dim"]),
            learn_temperature=bool(meta.get("learn_temperature", True)),
            text_max_length=int(meta["text_max_length"]),
            text_pooling=str(meta["text_pooling"]),
            reconstruct=bool(meta.get("reconstruct", False)),
            encoder_kwargs=enc_meta.kwargs,
        )
        heads = load_file(str(root / "heads.safetensors"))
        with torch.no_grad():
            model.logit_scale.copy_(heads.pop("logit_scale").reshape(()))
        missing, unexpected = model.load_state_dict(heads, strict=False)
        missing = [k for k in missing if k.split(".")[0] in ("ecg_head", "text_head", "decoder")]
        if missing or unexpected:
            raise ModelError(f"{root / 'heads.safetensors'} does not fit: missing {missing}, unexpected {unexpected}")
        model.eval()
        return model


def _text_layers(model: nn.Module) -> nn.ModuleList | None:
    """The transformer layer list of a BERT-like encoder (``encoder.layer``) or similar (``layers``)."""
    for path in ("encoder.layer", "encoder.layers", "layers", "transformer.layer"):
        node: Any = model
        for part in path.split("."):
            node = getattr(node, part, None)
            if node is None:
                break
        if isinstance(node, nn.ModuleList):
            return node
    return None
