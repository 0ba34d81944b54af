"""The MQTT side of the intake: a paho-mqtt 2.x subscriber that acknowledges after storing.

Session: MQTT 5 with a fixed client id, clean start off and a session expiry interval of
0xFFFFFFFF (the session never expires: MQTT 5 section 3.1.2.11.2), so the broker keeps the
subscription and queues QoS 1 messages while the intake is down, and sends again on reconnect
every message it delivered without getting a PUBACK (MQTT 5 section 4.4). The subscriber's
Receive Maximum (section 3.1.2.11.3) lets up to ``receive_maximum`` unacknowledged messages be
in flight to it, so they arrive in batches large enough to commit together.

Acknowledgement: the client is made with ``manual_ack=True`` (paho-mqtt >= 2.0: "allows the
application to acknowledge receipt after it has completed processing of a message using the
ack() method"); paho then sends no PUBACK by itself, and ``Client.ack(mid, qos)`` is called from
the engine's writer thread once the reading's batch is committed. A crash before that leaves the
message unacknowledged and the broker delivers it again; the store answers the second copy with
``duplicate`` and stores nothing twice. If a batch cannot be stored (the database is down) its
messages stay unacknowledged and are submitted again after ``RETRY_DELAY_S``.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Final

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from reco2.ingest import contract
from reco2.ingest.engine import IntakeEngine
from reco2.mrv.store import Recorded

log = logging.getLogger("reco2.intake.mqtt")

DEFAULT_CLIENT_ID: Final = "reco2-intake"
#: The session never expires (MQTT 5: 0xFFFFFFFF).
SESSION_NEVER_EXPIRES: Final = 0xFFFFFFFF
#: Unacknowledged messages the broker may have in flight to the intake (MQTT 5 allows 65,535).
RECEIVE_MAXIMUM: Final = 8_192
KEEPALIVE_S: Final = 30
RETRY_DELAY_S: Final = 1.0
RETRY_LOG_S: Final = 10.0


class MqttIntake:
    """Subscribes to ``reco2/v1/readings/+`` and feeds the engine (see the module docstring)."""

    def __init__(
        self,
        engine: IntakeEngine,
        host: str = "127.0.0.1",
        port: int = 1883,
        client_id: str = DEFAULT_CLIENT_ID,
        receive_maximum: int = RECEIVE_MAXIMUM,
    ) -> None:
        self.engine = engine
        self.host = host
        self.port = port
        self.client_id = client_id
        self.connected = False
        self.subscribed = False
        self.messages = 0
        self._stopping = threading.Event()
        self._warned_at = -RETRY_LOG_S
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(min_delay=1, max_delay=5)
        self._properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        self._properties.SessionExpiryInterval = SESSION_NEVER_EXPIRES
        self._properties.ReceiveMaximum = receive_maximum

    def start(self) -> MqttIntake:
        """Connect in the background (retrying until the broker answers) and subscribe."""
        self.client.connect_async(
            self.host,
            self.port,
            keepalive=KEEPALIVE_S,
            clean_start=False,
            properties=self._properties,
        )
        self.client.loop_start()
        return self

    def stop(self) -> None:
        """Disconnect; messages not yet acknowledged stay with the broker for the next start."""
        self._stopping.set()
        self.client.disconnect()
        self.client.loop_stop()

    def status(self) -> dict[str, object]:
        return {
            "broker": f"{self.host}:{self.port}",
            "client_id": self.client_id,
            "connected": self.connected,
            "subscribed": self.subscribed,
            "messages": self.messages,
        }

    def _warn_retry(self, error: BaseException) -> None:
        """Say that messages wait for the store, at most every ``RETRY_LOG_S``."""
        now = time.monotonic()
        if now - self._warned_at >= RETRY_LOG_S:
            self._warned_at = now
            log.warning(
                "messages not stored (%s); kept unacknowledged, retried every %.0f s",
                error,
                RETRY_DELAY_S,
            )

    # ---- paho callbacks (on paho's network thread) ------------------------------------
    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        if reason.is_failure:
            log.warning("broker %s:%d refused the connection: %s", self.host, self.port, reason)
            return
        self.connected = True
        log.info(
            "connected to %s:%d (session present: %s)",
            self.host,
            self.port,
            flags.session_present,
        )
        # Subscribing again on a present session changes nothing and loses nothing.
        client.subscribe(contract.TOPIC_FILTER, qos=contract.QOS)

    def _on_subscribe(
        self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, properties: Any
    ) -> None:
        if any(reason.is_failure for reason in reasons):
            log.error(
                "the broker refused the subscription to %s: %s", contract.TOPIC_FILTER, reasons
            )
            return
        self.subscribed = True

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        self.connected = False
        self.subscribed = False
        if not self._stopping.is_set():
            log.warning("disconnected from %s:%d (%s); reconnecting", self.host, self.port, reason)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        self.messages += 1
        self._submit(message.mid, message.qos, bytes(message.payload), message.topic)

    def _submit(self, mid: int, qos: int, payload: bytes, topic: str) -> None:
        device_id = contract.device_of_topic(topic)

        def done(answers: list[Recorded] | None, error: BaseException | None) -> None:
            if error is None:
                if qos > 0:
                    self.client.ack(mid, qos)
                return
            if self._stopping.is_set():
                return  # unacknowledged: the broker sends it again after the restart
            self._warn_retry(error)
            timer = threading.Timer(RETRY_DELAY_S, self._submit, (mid, qos, payload, topic))
            timer.daemon = True
            timer.start()

        self.engine.submit([payload], done, [device_id])
