"""Encoders and decoders for the contract, built once per process."""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

from . import messages as m

T = TypeVar("T")

ENCODER = msgspec.json.Encoder()
_decoders: dict[Any, msgspec.json.Decoder[Any]] = {}


class PayloadError(ValueError):
    """A payload that does not decode into the expected type; the message names the field."""


def encode(value: Any) -> bytes:
    return ENCODER.encode(value)


def decoder_for(payload_type: type[T] | Any) -> msgspec.json.Decoder[T]:
    decoder = _decoders.get(payload_type)
    if decoder is None:
        decoder = _decoders[payload_type] = msgspec.json.Decoder(payload_type)
    return decoder


def decode(payload: bytes | str, payload_type: type[T] | Any) -> T:
    """Decode JSON into payload_type, raising PayloadError('Expected `float`, got `str` - at `$.power_w`')."""
    try:
        value: T = decoder_for(payload_type).decode(payload)
        return value
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise PayloadError(str(exc)) from exc
    except UnicodeDecodeError as exc:  # invalid UTF-8 inside a JSON string
        raise PayloadError(f"invalid UTF-8 at byte {exc.start}: {exc.reason}") from exc


def decode_reading(payload: bytes | str) -> m.Reading:
    return decode(payload, m.Reading)  # type: ignore[arg-type]


def decode_command(payload: bytes | str) -> m.Command:
    return decode(payload, m.Command)  # type: ignore[arg-type]
