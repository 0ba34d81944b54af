"""The intake engine: signed readings in, durable verdicts out, in batches.

Two threads and, optionally, worker processes:

- the **validator** takes everything submitted so far (up to ``max_batch_readings``), decodes it
  (``readings.decode_reading``), looks the devices up, has the Ed25519 signatures checked (on
  the worker processes when there are any: the check dominates the cost of a reading), runs the
  validation pipeline against ``CachedHistory`` (the store's accepted readings plus those of
  batches not yet committed) and hands the batch to the writer. With workers it prepares the
  next batch, whose signatures the workers check, while it runs the pipeline on this one.
- the **writer** stores each batch in one transaction (``ReadingsStore.record``) and only then
  calls each submitter back, so an acknowledgement (an MQTT PUBACK, an HTTP answer) always
  follows a commit. While it waits for the disk the validator goes on with the next batch.

A submitter (the MQTT subscriber, the HTTP endpoint, a benchmark) calls ``submit`` with raw
envelopes and a callback that receives the ``Recorded`` answers in order, or the exception that
kept the batch from being stored (then nothing of it was stored: retry). Bad input never raises:
it becomes a rejection with its reasons.
"""

from __future__ import annotations

import itertools
import logging
import math
import multiprocessing
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Final, Protocol

import nacl.bindings
import nacl.exceptions

from reco2.ledger.types import Device
from reco2.mrv.readings import (
    READING_DOMAIN,
    DecodedReading,
    DecodeFailure,
    decode_reading,
    reading_hash,
    verify_reading_signature,
    well_formed_key,
)
from reco2.mrv.store import CachedHistory, ReadingsStore, Recorded, Status
from reco2.mrv.validation import (
    DECODE,
    DEFAULT_PIPELINE,
    Candidate,
    Check,
    Pipeline,
    Reason,
    Rejection,
    Validated,
    ValidationContext,
)

log = logging.getLogger("reco2.intake")

#: Most readings validated and committed together. Larger batches amortise the commit (one
#: fsync) and the queries; 4,096 is also the HTTP endpoint's limit per request.
MAX_BATCH_READINGS: Final = 4_096
#: Fewest signatures sent to a worker process in one task (smaller ones cost more to ship).
MIN_VERIFY_CHUNK: Final = 64

#: How often a worker process checks that the intake that started it is still running [s].
PARENT_CHECK_S: Final = 1.0

#: The check that an MQTT message's topic names the device of the reading it carries.
TOPIC_CHECK: Final = "topic"
TOPIC_DEVICE_MISMATCH: Final = "topic_device_mismatch"

_ACCEPTED: Final = Status.accepted
_DUPLICATE: Final = Status.duplicate

Done = Callable[[list[Recorded] | None, BaseException | None], None]


class DeviceSource(Protocol):
    """Where the engine finds device records (``devices.LedgerDevices``, or a dict in tests)."""

    def device_of(self, device_id: str) -> Device | None: ...

    def refresh(self, force: bool = False) -> None: ...


class StaleBatch(RuntimeError):
    """A batch validated against a history that a failed write has since invalidated."""


# ---- signatures -----------------------------------------------------------------------------


def verify_signatures(signed: Sequence[bytes], keys: Sequence[bytes]) -> bytes:
    """Check signed messages (signature + ``READING_DOMAIN`` + body, as ``signed_message``
    makes them) against meter keys; one byte per message, 1 when valid.

    Runs on the worker processes (a module-level function, so it pickles by name). Two flat
    lists of bytes cost less to ship than a tuple per reading, and the loop calls libsodium
    directly: per reading this is the bare verification and little else.
    """
    verdicts = bytearray(len(signed))
    open_ = nacl.bindings.crypto_sign_open
    refused = (nacl.exceptions.BadSignatureError, nacl.exceptions.CryptoError, ValueError)
    for index, (message, key) in enumerate(zip(signed, keys, strict=True)):
        try:
            open_(message, key)
        except refused:
            continue
        verdicts[index] = 1
    return bytes(verdicts)


def exit_with_parent(parent_pid: int) -> None:
    """Worker initializer: end this worker once the intake that started it is gone.

    A SIGKILLed intake leaves ``ProcessPoolExecutor`` workers blocked on their call queue for
    ever (each holds the queue's write end too, so it never sees end of file), and the
    forkserver waiting for them; a thread in each worker checks on the intake instead.
    """

    def watch() -> None:
        while _alive(parent_pid):
            time.sleep(PARENT_CHECK_S)
        os._exit(0)

    threading.Thread(target=watch, name="intake-watch", daemon=True).start()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a dead process its parent has not reaped yet is a zombie: gone all the same
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


class PrecomputedSignature:
    """The pipeline's ``signature`` gate, answering from verdicts computed beforehand (by the
    worker processes) and verifying itself when it has none for a reading."""

    name = "signature"

    def __init__(self) -> None:
        self.verdicts: dict[bytes, bool] = {}

    def __call__(self, candidate: Candidate, context: ValidationContext) -> Rejection | None:
        valid = self.verdicts.get(candidate.decoded.hash)
        if valid is None:
            device = candidate.device
            assert device is not None, "the device gate runs first"
            valid = verify_reading_signature(candidate.decoded.envelope, device.meter_public_key)
        return None if valid else Rejection(self.name, Reason.bad_signature)


def _with_signature_gate(pipeline: Pipeline, gate: Check) -> Pipeline:
    gates = tuple(gate if check.name == gate.name else check for check in pipeline.gates)
    return Pipeline(gates, pipeline.steps)


# ---- batches --------------------------------------------------------------------------------


@dataclass(slots=True)
class _Job:
    raws: list[bytes]
    done: Done
    topic_devices: list[str | None] | None  # MQTT: the device each message's topic names


@dataclass(slots=True)
class _Prepared:
    jobs: list[_Job]
    raws: list[bytes]
    decoded: list[DecodedReading | DecodeFailure]
    topic_devices: list[str | None]
    verified: list[tuple[list[bytes], Future[bytes]]]  # (hashes, verdict bytes) per task


@dataclass(slots=True)
class _Batch:
    number: int
    generation: int
    jobs: list[_Job]
    verdicts: list[Validated]
    received_at_s: int


@dataclass(slots=True)
class IntakeStats:
    """What the engine did since it started (updated by the writer thread)."""

    received: int = 0
    accepted: int = 0
    duplicate: int = 0
    rejected: int = 0
    batches: int = 0
    failed_batches: int = 0
    last_error: str = ""
    started_at_s: float = field(default_factory=time.time)

    def as_dict(self) -> dict[str, object]:
        return {
            "received": self.received,
            "accepted": self.accepted,
            "duplicate": self.duplicate,
            "rejected": self.rejected,
            "batches": self.batches,
            "failed_batches": self.failed_batches,
            "last_error": self.last_error,
            "uptime_s": round(time.time() - self.started_at_s, 3),
        }


class IntakeEngine:
    """Decode, verify, validate and store readings in batches (see the module docstring)."""

    def __init__(
        self,
        store: ReadingsStore,
        devices: DeviceSource,
        *,
        pipeline: Pipeline = DEFAULT_PIPELINE,
        workers: int = 0,
        max_batch_readings: int = MAX_BATCH_READINGS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if workers < 0:
            raise ValueError("workers must be >= 0")
        self.store = store
        self.devices = devices
        self.workers = workers
        self.max_batch_readings = max_batch_readings
        self.history = CachedHistory(store)
        self.stats = IntakeStats()
        self._signature = PrecomputedSignature()
        self._pipeline = _with_signature_gate(pipeline, self._signature)
        self._clock = clock
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._writes: queue.Queue[_Batch | None] = queue.Queue(maxsize=2)
        self._numbers = itertools.count(1)
        self._stop_seen = False
        self._pool: ProcessPoolExecutor | None = None
        self._threads: list[threading.Thread] = []
        self._started = False

    # ---- lifecycle --------------------------------------------------------------------
    def start(self) -> IntakeEngine:
        assert not self._started, "an engine starts once"
        self._started = True
        if self.workers > 0:
            self._pool = self._new_pool()
        self._threads = [
            threading.Thread(target=self._validate_loop, name="intake-validator", daemon=True),
            threading.Thread(target=self._write_loop, name="intake-writer", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        return self

    def _new_pool(self) -> ProcessPoolExecutor:
        # forkserver: never fork a process that runs threads (this one does).
        context = multiprocessing.get_context("forkserver")
        pool = ProcessPoolExecutor(
            self.workers,
            mp_context=context,
            initializer=exit_with_parent,
            initargs=(os.getpid(),),
        )
        # Start the workers now rather than on the first batch.
        for done in [pool.submit(verify_signatures, [], []) for _ in range(self.workers)]:
            done.result()
        return pool

    def stop(self) -> None:
        """Finish what was submitted, then stop the threads and the workers."""
        if not self._started:
            return
        self._jobs.put(None)
        for thread in self._threads:
            thread.join()
        self._threads = []
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    def worker_pids(self) -> list[int]:
        """Process ids of the verifying workers (none without workers)."""
        if self._pool is None:
            return []
        pids = (process.pid for process in self._pool._processes.values())
        return sorted(pid for pid in pids if pid is not None)

    def __enter__(self) -> IntakeEngine:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- submission -------------------------------------------------------------------
    def submit(
        self, raws: list[bytes], done: Done, topic_devices: list[str | None] | None = None
    ) -> None:
        """Queue raw envelopes; ``done(answers, None)`` runs once they are durably stored, or
        ``done(None, error)`` when they could not be (then none of them was)."""
        if topic_devices is not None and len(topic_devices) != len(raws):
            raise ValueError("one topic device per reading")
        self._jobs.put(_Job(raws, done, topic_devices))

    def submit_future(
        self, raws: list[bytes], topic_devices: list[str | None] | None = None
    ) -> Future[list[Recorded]]:
        future: Future[list[Recorded]] = Future()

        def done(answers: list[Recorded] | None, error: BaseException | None) -> None:
            if error is not None:
                future.set_exception(error)
            else:
                assert answers is not None
                future.set_result(answers)

        self.submit(raws, done, topic_devices)
        return future

    def ingest(self, raws: list[bytes], timeout_s: float | None = None) -> list[Recorded]:
        """Submit and wait for the answers (raises what kept them from being stored)."""
        return self.submit_future(raws).result(timeout_s)

    # ---- the validator ----------------------------------------------------------------
    def _take(self, block: bool) -> list[_Job]:
        """Jobs submitted so far, up to the batch size (waits for one when ``block``)."""
        jobs: list[_Job] = []
        count = 0
        while count < self.max_batch_readings and not self._stop_seen:
            try:
                job = self._jobs.get(block=block and not jobs)
            except queue.Empty:
                break
            if job is None:
                self._stop_seen = True
                break
            jobs.append(job)
            count += len(job.raws)
        return jobs

    def _validate_loop(self) -> None:
        inflight: deque[_Prepared] = deque()
        try:
            while True:
                jobs = [] if self._stop_seen else self._take(block=not inflight)
                if jobs:
                    try:
                        inflight.append(self._prepare(jobs))
                    except Exception as exc:
                        self._validation_failed(jobs, exc)
                if not inflight:
                    if self._stop_seen:
                        break
                    continue
                # With workers, keep one batch being verified while this one is validated.
                if self._pool is None or len(inflight) >= 2 or not jobs:
                    prepared = inflight.popleft()
                    try:
                        self._finish(prepared)
                    except Exception as exc:
                        self._validation_failed(prepared.jobs, exc)
                        for later in inflight:  # verified by the same broken pool, perhaps
                            self._validation_failed(later.jobs, exc)
                        inflight.clear()
        except BaseException as exc:  # a bug: fail what is left rather than hang submitters
            log.exception("intake validator stopped")
            for prepared in inflight:
                _fail(prepared.jobs, exc)
            raise
        finally:
            self._writes.put(None)

    def _validation_failed(self, jobs: list[_Job], error: Exception) -> None:
        """A batch could not be validated (the store could not be read, a worker process
        died): its submitters hear of it and may send again; the engine goes on."""
        log.error("validating a batch failed: %s: %s", type(error).__name__, error)
        self.history.reset()
        if isinstance(error, BrokenProcessPool) and self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool()
        self.stats.failed_batches += 1
        self.stats.last_error = f"{type(error).__name__}: {error}"
        _fail(jobs, error)

    def _prepare(self, jobs: list[_Job]) -> _Prepared:
        self.devices.refresh()
        raws: list[bytes] = []
        topics: list[str | None] = []
        for job in jobs:
            raws.extend(job.raws)
            topics.extend(job.topic_devices or [None] * len(job.raws))
        decoded = [decode_reading(raw) for raw in raws]
        verified: list[tuple[list[bytes], Future[bytes]]] = []
        if self._pool is not None:
            hashes: list[bytes] = []
            signed: list[bytes] = []
            keys: list[bytes] = []
            device_of = self.devices.device_of
            failure = DecodeFailure
            for item in decoded:
                if isinstance(item, failure):
                    continue
                device = device_of(item.reading.device_id)
                if device is None or not well_formed_key(device.meter_public_key):
                    continue  # the pipeline's gates refuse it (or verify it themselves)
                envelope = item.envelope
                hashes.append(item.hash)
                # signed_message(envelope), written out: this runs for every reading
                signed.append(envelope.signature + READING_DOMAIN + envelope.body)
                keys.append(device.meter_public_key)
            size = max(MIN_VERIFY_CHUNK, math.ceil(len(signed) / self.workers))
            for start in range(0, len(signed), size):
                end = start + size
                future = self._pool.submit(verify_signatures, signed[start:end], keys[start:end])
                verified.append((hashes[start:end], future))
        return _Prepared(jobs, raws, decoded, topics, verified)

    def _finish(self, prepared: _Prepared) -> None:
        signature = self._signature.verdicts
        signature.clear()
        for hashes, future in prepared.verified:
            for hash_, valid in zip(hashes, future.result(), strict=True):
                signature[hash_] = bool(valid)
        now_s = int(self._clock())
        number = next(self._numbers)
        generation = self.history.generation
        context = ValidationContext(self.devices.device_of, self.history, now_s)
        verdicts: list[Validated] = []
        for raw, item, topic_device in zip(
            prepared.raws, prepared.decoded, prepared.topic_devices, strict=True
        ):
            if isinstance(item, DecodeFailure):
                verdict = Validated(raw, reading_hash(raw), None, (Rejection(DECODE, item),))
            else:
                verdict = self._pipeline.run(item, context)
                if topic_device is not None and topic_device != item.reading.device_id:
                    mismatch = Rejection(TOPIC_CHECK, TOPIC_DEVICE_MISMATCH)
                    verdict = Validated(
                        raw, verdict.hash, verdict.reading, (*verdict.rejections, mismatch)
                    )
                if verdict.accepted:
                    assert verdict.reading is not None
                    self.history.add(verdict.reading, number, generation)
            verdicts.append(verdict)
        signature.clear()
        self._writes.put(_Batch(number, generation, prepared.jobs, verdicts, now_s))

    # ---- the writer -------------------------------------------------------------------
    def _write_loop(self) -> None:
        while (batch := self._writes.get()) is not None:
            if batch.generation != self.history.generation:
                self._failed(batch, StaleBatch("validated before a failed write; send again"))
                continue
            try:
                answers = self.store.record(batch.verdicts, batch.received_at_s)
            except Exception as exc:
                log.error("storing a batch of %d readings failed: %s", len(batch.verdicts), exc)
                self.history.reset()
                self._failed(batch, exc)
                continue
            self.history.committed(batch.number)
            self._count(answers)
            position = 0
            for job in batch.jobs:
                part = answers[position : position + len(job.raws)]
                position += len(job.raws)
                _call(job.done, part, None)

    def _count(self, answers: list[Recorded]) -> None:
        stats = self.stats
        stats.batches += 1
        stats.received += len(answers)
        accepted, duplicate = _ACCEPTED, _DUPLICATE  # an enum member lookup costs a call
        for answer in answers:
            if answer.status is accepted:
                stats.accepted += 1
            elif answer.status is duplicate:
                stats.duplicate += 1
            else:
                stats.rejected += 1

    def _failed(self, batch: _Batch, error: BaseException) -> None:
        self.stats.failed_batches += 1
        self.stats.last_error = f"{type(error).__name__}: {error}"
        _fail(batch.jobs, error)


def _fail(jobs: list[_Job], error: BaseException) -> None:
    for job in jobs:
        _call(job.done, None, error)


def _call(done: Done, answers: list[Recorded] | None, error: BaseException | None) -> None:
    try:
        done(answers, error)
    except Exception:  # a submitter's bug must not stop the intake
        log.exception("an intake callback failed")
