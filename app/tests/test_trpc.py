"""The tRPC v11 wire format and every bad-input case."""

import json

import pytest


def test_query_answers_result_envelope(client):
    resp = client.get("/trpc/health.liveness")
    assert resp.status_code == 200
    assert resp.mimetype == "application/json"
    body = resp.get_json()
    assert body["result"]["data"]["alive"] is True
    assert body["result"]["data"]["timestamp"].endswith("Z")


def test_batch_answers_a_list_in_order(client):
    resp = client.get("/trpc/health.liveness,health.readiness?batch=1")
    assert resp.status_code == 200
    body = resp.get_json()
    assert isinstance(body, list)
    assert body[0]["result"]["data"]["alive"] is True
    assert body[1]["result"]["data"]["ready"] is True


def test_batch_with_mixed_outcomes_is_207(client):
    resp = client.get("/trpc/health.liveness,health.nope?batch=1&input=%7B%7D")
    assert resp.status_code == 207
    ok, missing = resp.get_json()
    assert "result" in ok
    assert missing["error"]["data"] == {"code": "NOT_FOUND", "httpStatus": 404, "path": "health.nope"}


def test_unknown_procedure_is_not_found(client):
    resp = client.get("/trpc/health.nope")
    assert resp.status_code == 404
    error = resp.get_json()["error"]
    assert error["code"] == -32004
    assert error["data"] == {"code": "NOT_FOUND", "httpStatus": 404, "path": "health.nope"}
    assert "health.nope" in error["message"]


def test_malformed_input_is_bad_request(client):
    resp = client.get("/trpc/health.liveness?input=%7Bnot-json")
    assert resp.status_code == 400
    error = resp.get_json()["error"]
    assert error["code"] == -32600
    assert error["data"]["code"] == "BAD_REQUEST"


def test_input_to_a_procedure_without_input_is_bad_request(client):
    resp = client.get("/trpc/health.liveness?input=" + json.dumps({"x": 1}))
    assert resp.status_code == 400
    assert resp.get_json()["error"]["data"]["code"] == "BAD_REQUEST"


def test_query_by_post_is_method_not_supported(client):
    resp = client.post("/trpc/health.liveness", data="{}", content_type="application/json")
    assert resp.status_code == 405
    assert resp.get_json()["error"]["data"]["code"] == "METHOD_NOT_SUPPORTED"


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/jsonx",
        "application/json-patch+json",
        "application/json; charset=latin1",
        "application/json;\tboundary=x",
        "",
    ],
)
def test_post_with_another_content_type_is_415_and_never_parsed(client, content_type):
    resp = client.post("/trpc/health.liveness", data='{"a":1}', headers={"Content-Type": content_type})
    assert resp.status_code == 415
    assert resp.get_json()["error"]["data"]["code"] == "UNSUPPORTED_MEDIA_TYPE"
    assert resp.get_json()["error"]["code"] == -32015


def test_post_whose_body_is_not_json_is_415(client):
    resp = client.post("/trpc/health.liveness", data="{oops", content_type="application/json")
    assert resp.status_code == 415


def test_oversized_body_is_413(client, app):
    limit = app.config["MAX_CONTENT_LENGTH"]
    resp = client.post("/trpc/health.liveness", data="x" * (limit + 1), content_type="application/json")
    assert resp.status_code == 413
    assert resp.get_json()["error"]["data"]["code"] == "PAYLOAD_TOO_LARGE"


def test_unexpected_error_is_internal_without_details(app, client, caplog):
    router = app.extensions["platform"]["router"]

    @router.query("test.boom")
    def boom(_input):
        raise RuntimeError("secret-internal-detail")

    resp = client.get("/trpc/test.boom", headers={"X-Request-ID": "req-boom-1"})
    assert resp.status_code == 500
    body = resp.get_data(as_text=True)
    assert "secret-internal-detail" not in body
    assert "Traceback" not in body
    assert json.loads(body)["error"]["data"]["code"] == "INTERNAL_SERVER_ERROR"
    assert resp.headers["X-Request-ID"] == "req-boom-1"


def test_request_id_is_honoured_or_generated(client):
    assert client.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers["X-Request-ID"] == "abc-123"
    generated = client.get("/healthz", headers={"X-Request-ID": "bad id <script>"}).headers["X-Request-ID"]
    assert len(generated) == 32
    assert "<" not in generated


def test_unknown_route_is_json_404(client):
    resp = client.get("/nope")
    assert resp.status_code == 404
    assert resp.get_json()["error"] == "NOT_FOUND"


def test_encode_inserts_database_json_as_sent_and_falls_back_to_json_for_big_integers():
    """encode() (every tRPC response): compact UTF-8; a RawJSON value (a listing's json/jsonb
    column) goes in byte for byte, unparsed. An integer beyond 64 bits, which orjson refuses,
    sends the whole body through json instead, with the same RawJSON values parsed there."""
    from platform_api.trpc import RawJSON, encode

    raw = RawJSON('{"a": [1, 2.50], "ü": null}'.encode())
    assert encode({"v": raw, "s": "é"}) == '{"v":{"a": [1, 2.50], "ü": null},"s":"é"}'.encode()
    big = 2**70
    body = encode({"n": big, "v": raw})
    assert json.loads(body) == {"n": big, "v": {"a": [1, 2.5], "ü": None}}
    assert str(big).encode() in body
    with pytest.raises(TypeError):
        encode({"x": object()})
