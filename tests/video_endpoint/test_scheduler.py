"""The one queue in front of the model: synchronous requests and jobs in one order, hang-ups and
cancels on one path, encoding apart from generating. A stand-in for the model's side of the
handler (`generate_frames`) makes each moment observable; the scheduler and the store are real."""

from __future__ import annotations

import json
import threading

from tests.waiting import wait_until
from video_endpoint.errors import HandlerError
from video_endpoint.jobs import InProcessJobStore, JobSettings
from video_endpoint.scheduler import Scheduler
from video_endpoint.stages import Produced
from video_endpoint.webhooks import WebhookSender


class Model:
    """Generations that wait for `release`, recording what ran when."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.log: list[str] = []
        self.encode_gate = threading.Event()
        self.encode_gate.set()

    def generate_frames(self, decoded, on_step):
        """As the handler's: never raises, a failure is the answer its encoding returns."""
        self.log.append(f"generate {decoded}")
        try:
            for step in range(1, 4):
                self.release.wait(10)
                on_step(step, 3)
        except HandlerError as exc:
            failed = Produced(exc.envelope())
            return lambda: failed

        def encode():
            self.encode_gate.wait(10)
            self.log.append(f"encoded {decoded}")
            return Produced({"ok": True, "outputs": {}, "diagnostics": {"request": decoded}})

        return encode

    @staticmethod
    def deliver(produced):
        return produced.result


def scheduler_with(model: Model) -> tuple[Scheduler, InProcessJobStore]:
    holder: list[Scheduler] = []
    store = InProcessJobStore(JobSettings(), lambda: holder[0].requests_ahead())
    holder.append(Scheduler(model, store, WebhookSender((), "")))
    return holder[0], store


def until(condition) -> None:
    wait_until(condition, "the scheduler to get there", timeout_s=10, every_s=0.005)


def test_a_jobs_position_counts_the_synchronous_requests_ahead_and_they_go_first():
    model = Model()
    scheduler, store = scheduler_with(model)
    first = scheduler.submit("sync-1")
    until(lambda: model.log == ["generate sync-1"])
    second = scheduler.submit("sync-2")
    job = store.submit("job-1", None)["job"]
    assert job["position"] == 3  # the running request, the waiting one, then this job
    hung_up = threading.Event()
    third = scheduler.submit("sync-3", cancel=hung_up)
    hung_up.set()  # the client went away while waiting: it never starts
    model.release.set()
    assert first.result(10).result["ok"] and second.result(10).result["ok"]
    assert third.result(10).result["error"]["type"] == "cancelled"
    until(lambda: json.loads(store.status_json(job["id"]))["job"]["status"] == "succeeded")
    assert [line for line in model.log if line.startswith("generate")] == [
        "generate sync-1", "generate sync-2", "generate job-1"]  # requests first, the hung-up one never


def test_a_cancel_and_a_hang_up_stop_at_the_next_step():
    model = Model()
    scheduler, store = scheduler_with(model)
    hung_up = threading.Event()
    answer = scheduler.submit("sync", cancel=hung_up)
    until(lambda: model.log == ["generate sync"])
    hung_up.set()
    model.release.set()
    assert answer.result(10).result["error"] == {"type": "cancelled", "field": None,
                                                 "message": "cancelled at step 1 of 3"}
    model.release.clear()
    job_id = store.submit("job", None)["job"]["id"]
    until(lambda: "generate job" in model.log)
    store.status_json(job_id, cancel=True)
    model.release.set()
    until(lambda: json.loads(store.status_json(job_id))["job"]["status"] == "cancelled")
    assert json.loads(store.status_json(job_id))["job"]["progress"]["step"] == 1


def test_the_model_generates_the_next_request_while_the_last_one_encodes():
    model = Model()
    model.release.set()
    model.encode_gate.clear()  # request 1's encoding holds until request 2 has been generated
    scheduler, _ = scheduler_with(model)
    answers = [scheduler.submit(name) for name in ("one", "two")]
    until(lambda: model.log[:2] == ["generate one", "generate two"])
    assert not answers[0].done()  # still encoding while the model moved on
    model.encode_gate.set()
    assert [answer.result(10).result["diagnostics"]["request"] for answer in answers] == ["one", "two"]
    assert model.log == ["generate one", "generate two", "encoded one", "encoded two"]
