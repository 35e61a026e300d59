"""What a report server accepts and how it runs: limits, batching, decoding, binding — validated once.

Every limit is a field here (not a constant in a handler) so the API, its error messages, ``GET
/v1/health`` and ``docs/serving.md`` name the same numbers, and a bad value fails at start-up with the
key it belongs to.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from meit.errors import ConfigError

#: hosts that only this machine can reach
LOOPBACK_NAMES = frozenset({"localhost", "ip6-localhost"})


class Limits(BaseModel):
    """Bounds on one request; anything beyond them is a 4xx naming the field and the bound."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_upload_bytes: int = Field(16 * 1024 * 1024, gt=0, description="whole request body")
    max_seconds: float = Field(60.0, gt=0, description="longest recording accepted")
    min_seconds: float = Field(2.0, gt=0, description="shortest recording accepted")
    min_fs: int = Field(50, gt=0, description="lowest sampling rate (Hz)")
    max_fs: int = Field(2000, gt=0, description="highest sampling rate (Hz)")
    max_question_chars: int = Field(500, gt=0)
    repair_gaps: bool = Field(False, description="JSON/.npy arrays: repair non-finite runs as `meit prep` would "
                              "instead of refusing them (wfdb records are always read as prep reads them)")

    @model_validator(mode="after")
    def _ordered(self) -> Limits:
        if self.min_seconds > self.max_seconds:
            raise ValueError(f"min_seconds ({self.min_seconds}) must not exceed max_seconds ({self.max_seconds})")
        if self.min_fs > self.max_fs:
            raise ValueError(f"min_fs ({self.min_fs}) must not exceed max_fs ({self.max_fs})")
        return self

    def max_samples(self, fs: int) -> int:
        return int(self.max_seconds * fs)


class Batching(BaseModel):
    """Requests arriving within ``window_ms`` of the first waiting one are generated as one batch."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    window_ms: float = Field(20.0, ge=0)
    max_batch: int = Field(8, ge=1, description="rows per batch (a request with a question has two)")
    max_queue: int = Field(64, ge=1, description="waiting requests beyond which the server answers 503")


class Decoding(BaseModel):
    """The decoding every request gets (one setting per server keeps batches homogeneous)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_new_tokens: int = Field(96, ge=1, le=1024)
    num_beams: int = Field(1, ge=1, le=16)


class ServeSettings(BaseModel):
    """One server: where it listens, who may call it, what it accepts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    token: str | None = Field(None, min_length=16)
    insecure_no_token: bool = False
    limits: Limits = Limits()
    batching: Batching = Batching()
    decoding: Decoding = Decoding()
    upload_dir: Path | None = Field(None, description="parent of the per-request temporary folders "
                                    "(default: the system's temporary directory)")
    verify: bool = True
    similar_k: int = Field(5, ge=1, le=50)

    @model_validator(mode="after")
    def _exposed_needs_token(self) -> ServeSettings:
        if not is_loopback(self.host) and self.token is None and not self.insecure_no_token:
            raise ValueError(f"host {self.host!r} is reachable from other machines: pass --token "
                             "(every /v1 call then needs 'Authorization: Bearer TOKEN') or, knowingly, "
                             "--insecure-no-token")
        return self


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def build_settings(**values: object) -> ServeSettings:
    """:class:`ServeSettings` from keyword values; a bad value is a ConfigError naming its key."""
    try:
        return ServeSettings.model_validate(values)
    except ValidationError as err:
        problems = []
        for e in err.errors():
            key = ".".join(str(p) for p in e["loc"])
            shown = "" if not e["loc"] or key == "token" else f" (got {e.get('input')!r})"  # never echo a secret
            problems.append(f"{key}: {e['msg']}{shown}" if key else e["msg"])
        raise ConfigError("serve settings: " + "; ".join(problems)) from None
