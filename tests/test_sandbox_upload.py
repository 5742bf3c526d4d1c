"""The presigned URL: an S3-like PUT target that checks its signature, header and expiry."""

from __future__ import annotations

from urllib.parse import urlsplit

import requests

from csvimport.sandbox import Sandbox

from .helpers import Importer, cognito_csv, upload, user


def test_upload_without_the_encryption_header_is_signature_does_not_match(
    importer: Importer,
) -> None:
    job = importer.create()
    response = requests.put(job["PreSignedUrl"], data=b"x", timeout=10)
    assert response.status_code == 403
    assert "<Code>SignatureDoesNotMatch</Code>" in response.text


def test_upload_with_a_wrong_encryption_value_is_refused(importer: Importer) -> None:
    job = importer.create()
    response = upload(job["PreSignedUrl"], b"x", **{"x-amz-server-side-encryption": "AES256"})
    assert response.status_code == 403


def test_upload_with_a_tampered_signature_is_refused(importer: Importer) -> None:
    job = importer.create()
    url = job["PreSignedUrl"].replace("X-Amz-Signature=", "X-Amz-Signature=0")
    assert upload(url, b"x").status_code == 403


def test_upload_to_another_jobs_path_with_this_jobs_signature_is_refused(
    importer: Importer,
) -> None:
    first, second = importer.create("a"), importer.create("b")
    url = first["PreSignedUrl"].replace(first["JobId"], second["JobId"])
    assert upload(url, b"x").status_code == 403


def test_upload_after_15_minutes_is_refused_as_expired(
    importer: Importer, sandbox: Sandbox
) -> None:
    job = importer.create()
    sandbox.clock.advance(15 * 60 + 1)
    response = upload(job["PreSignedUrl"], cognito_csv(importer.header(), [user("x")]))
    assert response.status_code == 403
    assert "<Code>AccessDenied</Code>" in response.text and "expired" in response.text


def test_upload_just_before_expiry_is_accepted(importer: Importer, sandbox: Sandbox) -> None:
    job = importer.create()
    sandbox.clock.advance(15 * 60 - 5)
    assert (
        upload(job["PreSignedUrl"], cognito_csv(importer.header(), [user("x")])).status_code == 200
    )


def test_upload_is_put_only(importer: Importer) -> None:
    job = importer.create()
    assert requests.get(job["PreSignedUrl"], timeout=10).status_code == 405


def test_chunked_upload_without_content_length_is_refused(importer: Importer) -> None:
    job = importer.create()
    body = iter([b"a,b\n", b"c,d\n"])  # a generator makes requests send chunked encoding
    response = requests.put(
        job["PreSignedUrl"], data=body,
        headers={"x-amz-server-side-encryption": "aws:kms"}, timeout=10,
    )  # fmt: skip
    assert response.status_code == 411


def test_upload_to_a_started_job_is_refused(importer: Importer) -> None:
    run = importer.run([user("x")])
    assert upload(run.job["PreSignedUrl"], b"again").status_code == 403


def test_a_reupload_before_start_replaces_the_file(importer: Importer) -> None:
    job = importer.create()
    upload(job["PreSignedUrl"], cognito_csv(importer.header(), [user("old")]))
    upload(job["PreSignedUrl"], cognito_csv(importer.header(), [user("new")]))
    importer.start(job["JobId"])
    importer.wait(job["JobId"])
    assert set(importer.users()) == {"new"}


def test_injected_upload_failures_answer_503_then_succeed(
    importer: Importer, sandbox: Sandbox
) -> None:
    sandbox.faults.update(upload_failures=2)
    job = importer.create()
    body = cognito_csv(importer.header(), [user("x")])
    codes = [upload(job["PreSignedUrl"], body).status_code for _ in range(3)]
    assert codes == [503, 503, 200]


def test_injected_upload_refusals_answer_403_access_denied_then_accept(
    importer: Importer, sandbox: Sandbox
) -> None:
    sandbox.faults.update(upload_refusals=1)
    job = importer.create()
    body = cognito_csv(importer.header(), [user("x")])
    refused = upload(job["PreSignedUrl"], body)
    assert refused.status_code == 403 and "<Code>AccessDenied</Code>" in refused.text
    assert "expired" not in refused.text
    assert upload(job["PreSignedUrl"], body).status_code == 200


def test_the_url_points_at_the_sandbox_and_hides_the_token_from_request_logs(
    importer: Importer, sandbox: Sandbox, capfd: object
) -> None:
    job = importer.create()
    parts = urlsplit(job["PreSignedUrl"])
    assert f"{parts.scheme}://{parts.netloc}" == sandbox.endpoint_url
    upload(job["PreSignedUrl"], cognito_csv(importer.header(), [user("x")]))
    out, err = capfd.readouterr()  # type: ignore[attr-defined]
    assert "X-Amz-Security-Token" not in out + err
