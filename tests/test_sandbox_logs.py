"""The job's CloudWatch Logs: where they are, how they page, how they lag."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from botocore.exceptions import ClientError

from csvimport.sandbox import Sandbox

from .helpers import Importer, user


def group_of(importer: Importer) -> str:
    return f"/aws/cognito/userpools/{importer.info.user_pool_id}/{importer.info.user_pool_name}"


def test_the_log_stream_is_named_job_id_slash_job_name(importer: Importer, logs: Any) -> None:
    run = importer.run([user("a")], name="chunk 1")
    streams = logs.describe_log_streams(logGroupName=group_of(importer))["logStreams"]
    assert [s["logStreamName"] for s in streams] == [f"{run.job_id}/chunk 1"]


def test_filter_by_stream_prefix_returns_only_that_jobs_lines_in_time_order(
    importer: Importer, logs: Any
) -> None:
    first = importer.run([user(f"a{i}") for i in range(5)])
    second = importer.run([user(f"b{i}") for i in range(3)])
    events = logs.filter_log_events(
        logGroupName=group_of(importer), logStreamNamePrefix=second.job_id
    )
    assert {e["logStreamName"] for e in events["events"]} == {f"{second.job_id}/job"}
    assert len(events["events"]) == 3
    everything = logs.filter_log_events(logGroupName=group_of(importer))["events"]
    assert len(everything) == 8
    stamps = [e["timestamp"] for e in everything]
    assert stamps == sorted(stamps)
    assert first.job_id != second.job_id


def test_filter_pages_with_a_token_until_the_last_page(importer: Importer, logs: Any) -> None:
    run = importer.run([user(f"p{i}") for i in range(25)])
    seen: list[str] = []
    kwargs: dict[str, Any] = {"logGroupName": group_of(importer), "logStreamNamePrefix": run.job_id,
                              "limit": 10}  # fmt: skip
    pages = 0
    while True:
        page = logs.filter_log_events(**kwargs)
        pages += 1
        seen += [e["message"] for e in page["events"]]
        if "nextToken" not in page:
            break
        kwargs["nextToken"] = page["nextToken"]
    assert pages == 3
    assert [int(m.split("Line Number ")[1].split(" ")[0]) for m in seen] == list(range(1, 26))


def test_empty_pages_that_carry_a_token_still_lead_to_every_line(
    importer: Importer, logs: Any, sandbox: Sandbox
) -> None:
    run = importer.run([user(f"e{i}") for i in range(12)])
    sandbox.faults.update(empty_log_pages_every=2)
    kwargs: dict[str, Any] = {"logGroupName": group_of(importer), "logStreamNamePrefix": run.job_id,
                              "limit": 5}  # fmt: skip
    empty_with_token = 0
    messages: list[str] = []
    for _ in range(20):
        page = logs.filter_log_events(**kwargs)
        if not page["events"] and "nextToken" in page:
            empty_with_token += 1
        messages += [e["message"] for e in page["events"]]
        if "nextToken" not in page:
            break
        kwargs["nextToken"] = page["nextToken"]
    assert empty_with_token >= 1
    assert len(messages) == 12


def test_get_log_events_returns_the_same_forward_token_at_the_end(
    importer: Importer, logs: Any
) -> None:
    run = importer.run([user(f"g{i}") for i in range(7)])
    stream = f"{run.job_id}/job"
    kwargs: dict[str, Any] = {"logGroupName": group_of(importer), "logStreamName": stream,
                              "startFromHead": True, "limit": 3}  # fmt: skip
    messages: list[str] = []
    for _ in range(10):
        page = logs.get_log_events(**kwargs)
        messages += [e["message"] for e in page["events"]]
        if kwargs.get("nextToken") == page["nextForwardToken"]:
            break
        kwargs["nextToken"] = page["nextForwardToken"]
    assert len(messages) == 7


def test_log_lines_can_lag_behind_the_job_end(importer: Importer, sandbox: Sandbox) -> None:
    sandbox.settings.update(log_lag_seconds=1.5)
    run = importer.run([user(f"l{i}") for i in range(6)])
    assert run.job["Status"] == "Succeeded"
    assert len(importer.log_lines(run.job_id)) < 6
    deadline = time.monotonic() + 10
    while len(importer.log_lines(run.job_id)) < 6 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(importer.log_lines(run.job_id)) == 6


def test_names_and_prefix_together_are_invalid(importer: Importer, logs: Any) -> None:
    run = importer.run([user("n")])
    with pytest.raises(ClientError) as exc:
        logs.filter_log_events(logGroupName=group_of(importer), logStreamNamePrefix=run.job_id,
                               logStreamNames=[f"{run.job_id}/job"])  # fmt: skip
    assert exc.value.response["Error"]["Code"] == "InvalidParameterException"


def test_a_missing_stream_or_group_is_named_as_what_is_missing(
    importer: Importer, logs: Any
) -> None:
    importer.run([user("m")])
    group = group_of(importer)

    def error(call: Any, **kwargs: Any) -> tuple[str, str]:
        with pytest.raises(ClientError) as exc:
            call(**kwargs)
        return exc.value.response["Error"]["Code"], exc.value.response["Error"]["Message"]

    stream_missing = ("ResourceNotFoundException", "The specified log stream does not exist.")
    group_missing = ("ResourceNotFoundException", "The specified log group does not exist.")
    assert error(logs.get_log_events, logGroupName=group, logStreamName="import-x/nope") == (
        stream_missing
    )
    assert error(logs.delete_log_stream, logGroupName=group, logStreamName="nope") == (
        stream_missing
    )
    assert error(logs.get_log_events, logGroupName=group + "-gone", logStreamName="x") == (
        group_missing
    )
    arn = f"arn:aws:logs:us-east-1:123456789012:log-group:{group}"
    assert error(logs.get_log_events, logGroupIdentifier=arn + "-gone", logStreamName="x") == (
        group_missing
    )


def test_a_group_given_by_its_arn_is_that_group_among_several(
    importer: Importer, logs: Any
) -> None:
    run = importer.run([user("first")])
    logs.create_log_group(logGroupName=group_of(importer) + "-later")  # moto took the last one
    arn = f"arn:aws:logs:us-east-1:123456789012:log-group:{group_of(importer)}"
    page = logs.get_log_events(logGroupIdentifier=arn, logStreamName=f"{run.job_id}/job")
    assert [e["message"] for e in page["events"]] == [
        "[SUCCEEDED] Line Number 1 - The import succeeded."]  # fmt: skip


def test_a_stream_deleted_while_lines_are_due_is_written_again_and_jobs_go_on(
    importer: Importer, sandbox: Sandbox, logs: Any
) -> None:
    sandbox.settings.update(log_lag_seconds=1.0)
    run = importer.run([user(f"d{i}") for i in range(3)])
    logs.delete_log_stream(logGroupName=group_of(importer), logStreamName=f"{run.job_id}/job")
    deadline = time.monotonic() + 10
    while len(importer.log_lines(run.job_id)) < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(importer.log_lines(run.job_id)) == 3
    sandbox.settings.update(log_lag_seconds=0.0)
    assert importer.run([user("after")]).job["Status"] == "Succeeded"


def _stream_of(logs: Any, events: int, *, group: str = "", stream: str = "s") -> tuple[str, str]:
    """A new group with one stream of ``events`` events one millisecond apart, put
    through PutLogEvents in batches of 10,000 (its limit); messages number them 0..n-1."""
    group = group or f"/test/paging/{uuid.uuid4().hex}"
    if stream == "s":
        logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName=stream)
    start = int(time.time() * 1000) - 3_600_000
    for first in range(0, events, 10_000):
        batch = [{"timestamp": start + n, "message": str(n)}
                 for n in range(first, min(events, first + 10_000))]  # fmt: skip
        logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=batch)
    return group, stream


def test_a_page_of_a_large_stream_examines_its_own_events_at_the_start_and_at_the_end(
    logs: Any, sandbox: Sandbox
) -> None:
    group, stream = _stream_of(logs, 100_000)
    costs: list[int] = []
    messages: list[str] = []
    kwargs: dict[str, Any] = {"logGroupName": group, "logStreamNames": [stream]}
    while True:
        before = sandbox.log_events_examined(group, stream)
        page = logs.filter_log_events(**kwargs)
        costs.append(sandbox.log_events_examined(group, stream) - before)
        messages += [e["message"] for e in page["events"]]
        if "nextToken" not in page:
            break
        kwargs["nextToken"] = page["nextToken"]
    assert messages == [str(n) for n in range(100_000)]
    # 10,000 events a page, plus the one looked at to know that another page follows.
    assert costs == [10_001] * 9 + [10_000]

    costs, forward = [], 0
    kwargs = {"logGroupName": group, "logStreamName": stream, "startFromHead": True}
    while True:
        before = sandbox.log_events_examined(group, stream)
        page = logs.get_log_events(**kwargs)
        costs.append(sandbox.log_events_examined(group, stream) - before)
        forward += len(page["events"])
        if kwargs.get("nextToken") == page["nextForwardToken"]:
            break
        kwargs["nextToken"] = page["nextForwardToken"]
    assert forward == 100_000
    assert costs == [10_000] * 10 + [0]


def test_filter_pages_merge_several_streams_in_time_order_examining_about_a_page(
    logs: Any, sandbox: Sandbox
) -> None:
    group, _ = _stream_of(logs, 3_000, stream="s")
    _stream_of(logs, 3_000, group=group, stream="t")
    examined = lambda: sum(sandbox.log_events_examined(group, s) for s in "st")  # noqa: E731
    kwargs: dict[str, Any] = {"logGroupName": group, "limit": 1_000}
    seen: list[tuple[int, str]] = []
    while True:
        before = examined()
        page = logs.filter_log_events(**kwargs)
        # Each stream's next event is looked at to merge; one more to know a page follows.
        assert examined() - before <= 1_000 + 2 + 1
        seen += [(e["timestamp"], e["logStreamName"]) for e in page["events"]]
        if "nextToken" not in page:
            break
        kwargs["nextToken"] = page["nextToken"]
    assert len(seen) == 6_000 and len(set(seen)) == 6_000
    assert [stamp for stamp, _ in seen] == sorted(stamp for stamp, _ in seen)


def test_events_logged_after_a_token_was_given_come_on_the_next_pages_exactly_once(
    logs: Any,
) -> None:
    group, stream = _stream_of(logs, 25)
    last = logs.get_log_events(logGroupName=group, logStreamName=stream)["events"][-1]
    kwargs: dict[str, Any] = {"logGroupName": group, "logStreamNames": [stream], "limit": 10}
    filtered: list[str] = []
    get_kwargs: dict[str, Any] = {"logGroupName": group, "logStreamName": stream,
                                  "startFromHead": True, "limit": 10}  # fmt: skip
    got: list[str] = []
    late = 0
    for _ in range(20):
        page = logs.filter_log_events(**kwargs)
        filtered += [e["message"] for e in page["events"]]
        got_page = logs.get_log_events(**get_kwargs)
        got += [e["message"] for e in got_page["events"]]
        if late < 2:  # lines the job writes late: as late as the last, and later still
            logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=[
                {"timestamp": last["timestamp"] + late, "message": f"late {late}"}])  # fmt: skip
            late += 1
        get_kwargs["nextToken"] = got_page["nextForwardToken"]
        if "nextToken" not in page:
            break
        kwargs["nextToken"] = page["nextToken"]
    expected = [str(n) for n in range(25)] + ["late 0", "late 1"]
    assert filtered == expected
    assert got == expected


def test_events_put_out_of_time_order_are_read_in_time_order(logs: Any) -> None:
    group, stream = _stream_of(logs, 5)
    first = logs.get_log_events(logGroupName=group, logStreamName=stream)["events"][0]
    logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=[
        {"timestamp": first["timestamp"] - 1, "message": "earlier"}])  # fmt: skip
    expected = ["earlier"] + [str(n) for n in range(5)]
    page = logs.filter_log_events(logGroupName=group)
    assert [e["message"] for e in page["events"]] == expected
    page = logs.get_log_events(logGroupName=group, logStreamName=stream, startFromHead=True)
    assert [e["message"] for e in page["events"]] == expected
    window = logs.filter_log_events(logGroupName=group, startTime=first["timestamp"],
                                    endTime=first["timestamp"] + 1)["events"]  # fmt: skip
    assert [e["message"] for e in window] == ["0", "1"]
    window = logs.get_log_events(logGroupName=group, logStreamName=stream,
                                 startTime=first["timestamp"], endTime=first["timestamp"] + 1,
                                 startFromHead=True)["events"]  # fmt: skip
    assert [e["message"] for e in window] == ["0", "1"]


@pytest.mark.parametrize("token", ["garbage", "b2Zmc2V0OjA=", "YWZ0ZXI6MQ=="])
def test_a_filter_token_that_is_not_one_the_sandbox_gave_is_invalid(logs: Any, token: str) -> None:
    group, _ = _stream_of(logs, 1)
    with pytest.raises(ClientError) as exc:
        logs.filter_log_events(logGroupName=group, nextToken=token)
    assert exc.value.response["Error"]["Code"] == "InvalidParameterException"
    assert exc.value.response["Error"]["Message"] == "The nextToken is invalid."


def test_a_line_logged_late_but_stamped_before_the_tokens_event_is_only_in_a_new_read(
    logs: Any,
) -> None:
    # SANDBOX CHOICE LOG_FILTER_TOKEN_KIND: the token resumes after its event, so no
    # event already given comes again (an offset into the sorted events would repeat one).
    group, stream = _stream_of(logs, 20)
    first = logs.get_log_events(logGroupName=group, logStreamName=stream)["events"][0]
    page = logs.filter_log_events(logGroupName=group, limit=10)
    logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=[
        {"timestamp": first["timestamp"] + 5, "message": "late"}])  # fmt: skip
    rest = logs.filter_log_events(logGroupName=group, limit=10, nextToken=page["nextToken"])
    assert [e["message"] for e in page["events"] + rest["events"]] == [str(n) for n in range(20)]
    again = [e["message"] for e in logs.filter_log_events(logGroupName=group)["events"]]
    assert again == ["0", "1", "2", "3", "4", "5", "late", *(str(n) for n in range(6, 20))]
