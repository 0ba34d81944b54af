"""The wire contract between meters (or the simulator) and the intake.

MQTT
    Topic ``reco2/v1/readings/{device_id}``; payload: the raw ``SignedReading`` bytes of one
    reading (``reco2.mrv.readings.sign_reading``); QoS 1. Nothing is published back: a rejected
    reading is recorded in the readings store with its reasons (a reading published on another
    device's topic is rejected with ``topic_device_mismatch``, besides any other reason). The
    intake subscribes to ``reco2/v1/readings/+`` with a persistent session (MQTT 5, clean start
    off, a session that never expires, a fixed client id) and acknowledges each message (PUBACK)
    only once the reading is durably stored, so a reading the broker accepted survives an intake
    crash: the broker delivers it again when the intake reconnects.

HTTP
    ``POST /v1/readings`` with ``content-type: application/msgpack``; body: a MessagePack array
    of byte strings (``bin``), each one raw ``SignedReading``; at most ``MAX_BATCH_BYTES`` and
    ``MAX_BATCH_READINGS``. Answers, once every reading of the body is durably stored:
    ``200 {"results": [{"reading_id", "status", "reasons"}, ...]}`` in body order, where status
    is ``accepted``, ``duplicate`` (the same bytes are already stored as accepted) or
    ``rejected`` (reasons: the failed checks' codes, e.g. ``bad_signature``; ``reading_id`` is
    null when the bytes do not decode); ``413`` when the body is too large; ``400`` when it is not a
    MessagePack array of byte strings; ``415`` for a content type other than MessagePack;
    ``503`` when the store could not be written (nothing of the body was stored; send it
    again). ``GET /v1/status`` shows what the intake did since it started and its MQTT session.

Broker configuration the MQTT guarantee depends on (Mosquitto's defaults would break it):
``max_queued_messages`` must hold every reading that can arrive while the intake is down
(Mosquitto's default of 1,000 per client silently drops the rest *after* acknowledging them to
the sender; 0 means no limit), and ``persistence true`` keeps queued messages across a broker
restart (saved on shutdown and every ``autosave_interval``).
"""

from __future__ import annotations

from typing import Final

import msgspec

TOPIC_PREFIX: Final = "reco2/v1/readings/"
#: What the intake subscribes to: one topic level per device.
TOPIC_FILTER: Final = TOPIC_PREFIX + "+"
QOS: Final = 1

HTTP_PATH: Final = "/v1/readings"
CONTENT_TYPE: Final = "application/msgpack"
#: Largest request body [bytes] (1 MiB) and most readings in one request.
MAX_BATCH_BYTES: Final = 1 << 20
MAX_BATCH_READINGS: Final = 4_096

#: Statuses of one reading in an HTTP answer.
STATUSES: Final = ("accepted", "duplicate", "rejected")

_batch_encoder = msgspec.msgpack.Encoder()
_batch_decoder = msgspec.msgpack.Decoder(list[bytes])


def topic_for(device_id: str) -> str:
    """The MQTT topic a device publishes its readings to."""
    return TOPIC_PREFIX + device_id


def device_of_topic(topic: str) -> str | None:
    """The device id of a readings topic, None for any other topic."""
    if not topic.startswith(TOPIC_PREFIX):
        return None
    device_id = topic[len(TOPIC_PREFIX) :]
    return device_id if device_id and "/" not in device_id else None


def encode_batch(raws: list[bytes]) -> bytes:
    """An HTTP request body: the MessagePack array of raw signed readings."""
    return _batch_encoder.encode(raws)


class BatchError(ValueError):
    """An HTTP body that is not a MessagePack array of byte strings (the message says why)."""


def decode_batch(body: bytes) -> list[bytes]:
    """The raw signed readings of an HTTP request body; raises ``BatchError`` when malformed."""
    try:
        return _batch_decoder.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise BatchError(
            f"the body must be a MessagePack array of byte strings (bin), one signed reading "
            f"each: {exc}"
        ) from None
