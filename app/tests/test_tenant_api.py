"""The tenant API's 23 procedures over tRPC, as signed-in users of two tenants:
happy paths, every error code, the role matrix, and isolation (every read,
update and delete also tried with the other tenant's ids)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass

import psycopg
import pytest

from platform_api.auth import Identity

COOKIE = "authjs.session-token"  # http://localhost: no __Secure- prefix


@dataclass
class User:
    client: object
    id: str
    tenant: str
    email: str


def call(client, path: str, data=None, *, mutation: bool | None = None):
    """(http status, envelope) of one tRPC call; mutations are POSTs."""
    if mutation is None:
        mutation = path.split(".")[1].startswith(("create", "update", "delete", "end", "send"))
    if mutation:
        response = client.post(f"/trpc/{path}", data=json.dumps(data or {}), content_type="application/json")
    else:
        query = "" if data is None else "?input=" + json.dumps(data)
        response = client.get(f"/trpc/{path}{query}")
    return response.status_code, response.get_json()


def ok(client, path, data=None):
    status, body = call(client, path, data)
    assert status == 200, (path, body)
    return body["result"]["data"]


def error(client, path, data=None):
    status, body = call(client, path, data)
    assert "error" in body, (path, body)
    return status, body["error"]["data"]["code"], body["error"]["message"]


def unique(name: str) -> str:
    return f"{name}-{time.monotonic_ns()}@example.test"


def signed_in(app, email: str, name: str) -> User:
    store = app.extensions["platform"]["auth"].store
    _, token = store.create("google", Identity(f"sub-{email}", email, True, name, None))
    principal = store.principal(token)
    client = app.test_client()
    client.set_cookie(COOKIE, token)
    return User(client, str(principal.user_id), str(principal.tenant_id), email)


@pytest.fixture
def world(app):
    """Tenant A (owner, admin, member) and tenant B (owner), each signed in."""
    owner_a = signed_in(app, unique("owner-a"), "Owner A")
    people = {}
    for role in ("admin", "member"):
        email = unique(f"{role}-a")
        ok(owner_a.client, "users.create", {"email": email, "name": f"{role} A", "role": role})
        people[role] = signed_in(app, email, f"{role} A")
    owner_b = signed_in(app, unique("owner-b"), "Owner B")
    assert owner_a.tenant != owner_b.tenant
    assert {people["admin"].tenant, people["member"].tenant} == {owner_a.tenant}
    return {"owner": owner_a, "admin": people["admin"], "member": people["member"], "b": owner_b}


def seed(user: User) -> dict[str, str]:
    """One of everything in the user's tenant; their ids."""
    widget = ok(user.client, "widgets.create", {"name": "W", "domainWhitelist": ["https://shop.example"]})
    doc = ok(user.client, "knowledge.create", {"title": "Refunds", "content": "Refunds take five days."})
    session = ok(user.client, "sessions.create", {"widgetId": widget["id"], "mode": "text"})
    message = ok(user.client, "sessions.sendMessage", {"sessionId": session["id"], "content": "hello"})
    member = ok(user.client, "users.create", {"email": unique("extra"), "name": "Extra"})
    return {
        "widget": widget["id"],
        "doc": doc["id"],
        "session": session["id"],
        "message": message["id"],
        "user": member["id"],
    }


# -- authentication and roles ---------------------------------------------------------

PROCEDURES = {
    # path: (least role, input builder from the caller's own ids)
    "users.list": ("member", lambda ids: {}),
    "users.get": ("member", lambda ids: {"id": ids["user"]}),
    "users.create": ("admin", lambda ids: {"email": unique("new")}),
    "users.update": ("admin", lambda ids: {"id": ids["user"], "name": "Renamed"}),
    "users.delete": ("owner", lambda ids: {"id": ids["user"]}),
    "widgets.list": ("member", lambda ids: {}),
    "widgets.get": ("member", lambda ids: {"id": ids["widget"]}),
    "widgets.create": ("admin", lambda ids: {"name": "X", "domainWhitelist": ["https://a.example"]}),
    "widgets.update": ("admin", lambda ids: {"id": ids["widget"], "name": "Y"}),
    "widgets.delete": ("owner", lambda ids: {"id": ids["widget"]}),
    "knowledge.list": ("member", lambda ids: {}),
    "knowledge.get": ("member", lambda ids: {"id": ids["doc"]}),
    "knowledge.create": ("admin", lambda ids: {"title": "T", "content": "C"}),
    "knowledge.update": ("admin", lambda ids: {"id": ids["doc"], "title": "T2"}),
    "knowledge.delete": ("owner", lambda ids: {"id": ids["doc"]}),
    "knowledge.search": ("member", lambda ids: {"query": "refunds"}),
    "sessions.list": ("member", lambda ids: {}),
    "sessions.get": ("member", lambda ids: {"id": ids["session"]}),
    "sessions.create": ("member", lambda ids: {"mode": "text"}),
    "sessions.end": ("member", lambda ids: {"id": ids["session"]}),
    "sessions.delete": ("owner", lambda ids: {"id": ids["session"]}),
    "sessions.listMessages": ("member", lambda ids: {"sessionId": ids["session"]}),
    "sessions.sendMessage": ("member", lambda ids: {"sessionId": ids["session"], "content": "hi"}),
}
RANK = {"member": 1, "admin": 2, "owner": 3}
FORBIDDEN = {
    "admin": "Admin role required - insufficient permissions",
    "owner": "Owner role required - insufficient permissions",
}


def test_there_are_23_procedures(app):
    """The original's routers: users 5, widgets 5, knowledge 6, sessions 7."""
    registered = {p for p in app.extensions["platform"]["router"].procedures if not p.startswith("health.")}
    assert registered == set(PROCEDURES)


@pytest.mark.parametrize("path", sorted(PROCEDURES))
def test_every_procedure_needs_a_session(client, path):
    """No cookie: UNAUTHORIZED with the original's message, for every procedure."""
    status, body = call(client, path, {})
    assert status == 401
    assert body["error"]["data"]["code"] == "UNAUTHORIZED"
    assert body["error"]["message"] == "Authentication required - please sign in"


@pytest.mark.parametrize("role", ["member", "admin", "owner"])
def test_role_matrix(world, role):
    """Each role x every procedure: FORBIDDEN (with the original's message) exactly below the least role."""
    user = world[role]
    for path, (least, build) in PROCEDURES.items():
        ids = seed(world["owner"])
        status, body = call(user.client, path, build(ids))
        if RANK[role] < RANK[least]:
            assert status == 403, (role, path, body)
            assert body["error"]["message"] == FORBIDDEN[least]
        else:
            assert status == 200, (role, path, body)


# -- isolation -------------------------------------------------------------------------

OTHER_TENANT_CALLS = [
    ("users.get", lambda ids: {"id": ids["user"]}, "User"),
    ("users.update", lambda ids: {"id": ids["user"], "name": "pwned"}, "User"),
    ("users.delete", lambda ids: {"id": ids["user"]}, "User"),
    ("widgets.get", lambda ids: {"id": ids["widget"]}, "Widget"),
    ("widgets.update", lambda ids: {"id": ids["widget"], "name": "pwned", "isActive": False}, "Widget"),
    ("widgets.delete", lambda ids: {"id": ids["widget"]}, "Widget"),
    ("knowledge.get", lambda ids: {"id": ids["doc"]}, "Document"),
    ("knowledge.update", lambda ids: {"id": ids["doc"], "content": "pwned"}, "Document"),
    ("knowledge.delete", lambda ids: {"id": ids["doc"]}, "Document"),
    ("sessions.get", lambda ids: {"id": ids["session"]}, "Session"),
    ("sessions.end", lambda ids: {"id": ids["session"]}, "Session"),
    ("sessions.delete", lambda ids: {"id": ids["session"]}, "Session"),
    ("sessions.listMessages", lambda ids: {"sessionId": ids["session"]}, "Session"),
    ("sessions.sendMessage", lambda ids: {"sessionId": ids["session"], "content": "pwned"}, "Session"),
    ("sessions.create", lambda ids: {"widgetId": ids["widget"]}, "Widget"),
]


def snapshot(owner: User, ids: dict[str, str]) -> dict:
    return {
        "user": ok(owner.client, "users.get", {"id": ids["user"]}),
        "widget": ok(owner.client, "widgets.get", {"id": ids["widget"]}),
        "doc": ok(owner.client, "knowledge.get", {"id": ids["doc"]}),
        "session": ok(owner.client, "sessions.get", {"id": ids["session"]}),
        "messages": ok(owner.client, "sessions.listMessages", {"sessionId": ids["session"]}),
    }


@pytest.mark.parametrize(("path", "build", "what"), OTHER_TENANT_CALLS, ids=[c[0] for c in OTHER_TENANT_CALLS])
def test_other_tenants_ids_are_not_found_and_untouched(world, path, build, what):
    """Tenant B (an owner: every role check passes) with tenant A's ids: NOT_FOUND, and A's rows unchanged."""
    a, b = world["owner"], world["b"]
    ids = seed(a)
    before = snapshot(a, ids)
    status, code, message = error(b.client, path, build(ids))
    assert (status, code, message) == (404, "NOT_FOUND", f"{what} not found or access denied")
    assert snapshot(a, ids) == before


def test_lists_and_search_show_only_the_own_tenant(world):
    """B's lists, counts and search see none of A's rows (A has rows of every kind)."""
    a, b = world["owner"], world["b"]
    seed(a)
    mine = seed(b)
    assert [u["tenantId"] for u in ok(b.client, "users.list")["users"]] == [b.tenant] * 2
    for path, key in (("widgets.list", "widgets"), ("knowledge.list", "documents"), ("sessions.list", "sessions")):
        page = ok(b.client, path)
        assert page["total"] == 1, path
        assert {row["tenantId"] for row in page[key]} == {b.tenant}
    found = ok(b.client, "knowledge.search", {"query": "refunds"})["results"]
    assert [r["id"] for r in found] == [mine["doc"]]


def test_batch_mixing_tenants_ids_runs_each_call_in_its_own_transaction(world):
    """One batch from B: its own list, A's widget (NOT_FOUND) and its own create; 207 with each outcome."""
    a, b = world["owner"], world["b"]
    ids = seed(a)
    inputs = {"0": {}, "1": {"id": ids["widget"]}, "2": {"title": "Batch", "content": "c"}}
    response = b.client.get("/trpc/widgets.list,widgets.get,knowledge.list?batch=1&input=" + json.dumps(inputs))
    assert response.status_code == 207
    listed, other, docs = response.get_json()
    assert listed["result"]["data"]["total"] == 0
    assert other["error"]["data"]["code"] == "NOT_FOUND"
    assert docs["result"]["data"]["total"] == 0
    # A mutation batch: the failing call does not roll back the other.
    response = b.client.post(
        "/trpc/widgets.create,widgets.delete?batch=1",
        data=json.dumps({"0": {"name": "Mine", "domainWhitelist": ["https://b.example"]}, "1": {"id": ids["widget"]}}),
        content_type="application/json",
    )
    created, refused = response.get_json()
    assert refused["error"]["data"]["code"] == "NOT_FOUND"
    assert ok(b.client, "widgets.get", {"id": created["result"]["data"]["id"]})["name"] == "Mine"
    assert ok(a.client, "widgets.get", {"id": ids["widget"]})["name"] == "W"


def test_concurrent_tenants_never_see_each_other(world):
    """A and B in parallel threads over the shared pool, 40 lists each: every answer is the caller's own."""
    a, b = world["owner"], world["b"]
    seed(a)
    seed(b)
    wrong: list[str] = []

    def run(user: User) -> None:
        client = user.client.application.test_client()
        client.set_cookie(COOKIE, user.client.get_cookie(COOKIE).value)
        for _ in range(40):
            rows = ok(client, "widgets.list")["widgets"]
            wrong.extend(r["tenantId"] for r in rows if r["tenantId"] != user.tenant)

    threads = [threading.Thread(target=run, args=(u,)) for u in (a, b, a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wrong == []


def test_foreign_keys_cannot_point_into_another_tenant(world, services):
    """Even bypassing the API's check, the database refuses a session on another tenant's widget."""
    ids = seed(world["owner"])
    b = world["b"]
    with psycopg.connect(services.bouncer_dsn(), autocommit=True) as conn, conn.transaction():
        conn.execute("SELECT set_config('app.current_tenant_id', %s, true)", (b.tenant,))
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            conn.execute(
                "INSERT INTO sessions (tenant_id, widget_id, mode) VALUES (%s, %s, 'text')", (b.tenant, ids["widget"])
            )


# -- users -------------------------------------------------------------------------------


def test_users_crud_and_filters(world):
    """create (lower-cased e-mail), list with search/role filters (total counts the filter), update, delete."""
    owner = world["owner"]
    created = ok(
        owner.client,
        "users.create",
        {"email": "Zed.Person@Example.TEST".replace("Zed", f"Zed{time.monotonic_ns()}"), "name": "Zed"},
    )
    assert created["email"] == created["email"].lower()
    assert created["role"] == "member"
    page = ok(owner.client, "users.list", {"search": "zed", "limit": 1})
    assert page["total"] == 1
    assert page["users"][0]["id"] == created["id"]
    assert page["hasMore"] is False
    admins = ok(owner.client, "users.list", {"role": "admin"})
    assert admins["total"] == 1
    assert admins["users"][0]["role"] == "admin"
    everyone = ok(owner.client, "users.list", {"limit": 2})
    assert everyone["total"] == 4
    assert everyone["hasMore"] is True
    assert len(everyone["users"]) == 2
    # `%` is a literal in search, not a wildcard.
    assert ok(owner.client, "users.list", {"search": "%"})["total"] == 0
    updated = ok(owner.client, "users.update", {"id": created["id"], "name": "Zed II", "role": "admin"})
    assert (updated["name"], updated["role"]) == ("Zed II", "admin")
    assert updated["updatedAt"] > created["updatedAt"]
    assert ok(owner.client, "users.delete", {"id": created["id"]}) == {"success": True, "id": created["id"]}
    assert error(owner.client, "users.get", {"id": created["id"]})[1] == "NOT_FOUND"


def test_users_conflicts_and_self_protection(world):
    """CONFLICT on a taken e-mail (in this tenant or another); BAD_REQUEST deleting yourself or changing your role."""
    owner, b = world["owner"], world["b"]
    for email in (world["admin"].email, b.email, b.email.upper()):
        assert error(owner.client, "users.create", {"email": email}) == (
            409,
            "CONFLICT",
            "User with this email already exists",
        )
    assert error(owner.client, "users.update", {"id": world["admin"].id, "email": b.email})[1] == "CONFLICT"
    assert error(owner.client, "users.delete", {"id": owner.id}) == (
        400,
        "BAD_REQUEST",
        "You cannot delete your own account",
    )
    assert error(owner.client, "users.update", {"id": owner.id, "role": "member"})[:2] == (400, "BAD_REQUEST")


def test_only_an_owner_grants_or_touches_owner(world):
    """An admin cannot make an owner, promote to owner, or edit an owner; an owner can."""
    admin, owner = world["admin"], world["owner"]
    assert error(admin.client, "users.create", {"email": unique("x"), "role": "owner"})[1] == "FORBIDDEN"
    assert error(admin.client, "users.update", {"id": world["member"].id, "role": "owner"})[1] == "FORBIDDEN"
    assert error(admin.client, "users.update", {"id": owner.id, "name": "Demoted"})[1] == "FORBIDDEN"
    assert error(admin.client, "users.update", {"id": owner.id, "role": "member"})[1] == "FORBIDDEN"
    assert ok(owner.client, "users.update", {"id": world["member"].id, "role": "owner"})["role"] == "owner"


# -- widgets -----------------------------------------------------------------------------


def test_widgets_crud_and_settings(world):
    """create with settings, list filtered by isActive (total too), update, delete."""
    owner = world["owner"]
    settings = {"theme": "dark", "position": "top-left", "greeting": "Hi!", "primaryColor": "#12abEF"}
    made = ok(
        owner.client,
        "widgets.create",
        {"name": "Help", "domainWhitelist": ["https://a.example", "http://localhost:3000"], "settings": settings},
    )
    assert made["settings"] == settings
    assert made["isActive"] is True
    assert made["createdAt"].endswith("Z")
    assert uuid.UUID(made["tenantId"])
    ok(owner.client, "widgets.create", {"name": "Off", "domainWhitelist": ["https://b.example"]})
    off = ok(owner.client, "widgets.list", {"isActive": True})
    assert off["total"] == 2
    changed = ok(owner.client, "widgets.update", {"id": made["id"], "isActive": False})
    assert changed["isActive"] is False
    assert changed["name"] == "Help"
    assert changed["settings"] == settings
    inactive = ok(owner.client, "widgets.list", {"isActive": False})
    assert inactive["total"] == 1
    assert inactive["widgets"][0]["id"] == made["id"]
    assert ok(owner.client, "widgets.delete", {"id": made["id"]})["success"] is True


@pytest.mark.parametrize(
    "bad",
    [
        {"name": "", "domainWhitelist": ["https://a.example"]},
        {"name": "x", "domainWhitelist": []},
        {"name": "x", "domainWhitelist": ["ftp://a.example"]},
        {"name": "x", "domainWhitelist": ["not a url"]},
        {"name": "x", "domainWhitelist": ["https://a.example"], "settings": {"greeting": "g" * 201}},
        {"name": "x", "domainWhitelist": ["https://a.example"], "settings": {"primaryColor": "red"}},
        {"name": "x", "domainWhitelist": ["https://a.example"], "settings": {"theme": "neon"}},
        {"name": "x", "domainWhitelist": ["https://a.example"] * 51},
    ],
)
def test_widget_input_is_validated(world, bad):
    """Bad names, URLs, settings and oversized lists: BAD_REQUEST with zod-style issues, nothing written."""
    owner = world["owner"]
    status, code, message = error(owner.client, "widgets.create", bad)
    assert (status, code) == (400, "BAD_REQUEST")
    assert json.loads(message)[0]["path"]
    assert ok(owner.client, "widgets.list")["total"] == 0


@pytest.mark.parametrize(
    ("path", "bad"),
    [
        ("widgets.list", {"limit": 0}),
        ("widgets.list", {"limit": 101}),
        ("widgets.list", {"offset": -1}),
        ("users.list", {"role": "root"}),
        ("users.get", {"id": "not-a-uuid"}),
        ("knowledge.search", {"query": "x", "limit": 21}),
        ("knowledge.search", {"query": ""}),
        ("sessions.list", {"mode": "video"}),
        ("sessions.sendMessage", {"sessionId": str(uuid.uuid4()), "content": ""}),
        ("widgets.list", [1]),
    ],
)
def test_bounds_are_enforced(world, path, bad):
    """The original's bounds: limit 1-100, search limit 1-20, enums, UUIDs, non-empty content, objects only."""
    status, code, _ = error(world["owner"].client, path, bad)
    assert (status, code) == (400, "BAD_REQUEST")


# -- knowledge -----------------------------------------------------------------------------


def test_knowledge_crud_and_ranked_search(world):
    """Full-text search over title and content, ranked, filtered by category; list search and total agree."""
    owner = world["owner"]
    docs = [
        ("Refund policy", "Refunds are paid within five days of the request.", "billing"),
        ("Shipping", "Parcels ship in two days. Refunds for lost parcels follow the refund policy.", "logistics"),
        ("Careers", "We are hiring engineers.", None),
    ]
    made = [ok(owner.client, "knowledge.create", {"title": t, "content": c, "category": k}) for t, c, k in docs]
    found = ok(owner.client, "knowledge.search", {"query": "refund"})
    assert [r["id"] for r in found["results"]] == [made[0]["id"], made[1]["id"]]
    assert found["results"][0]["rank"] > found["results"][1]["rank"]
    assert found["query"] == "refund"
    only = ok(owner.client, "knowledge.search", {"query": "refund", "category": "logistics", "limit": 1})
    assert [r["id"] for r in only["results"]] == [made[1]["id"]]
    assert ok(owner.client, "knowledge.search", {"query": "hiring"})["results"][0]["title"] == "Careers"
    listed = ok(owner.client, "knowledge.list", {"search": "refund", "limit": 1})
    assert listed["total"] == 2
    assert listed["hasMore"] is True
    assert ok(owner.client, "knowledge.list", {"category": "billing"})["total"] == 1
    updated = ok(owner.client, "knowledge.update", {"id": made[2]["id"], "content": "Refund desk jobs."})
    assert updated["content"] == "Refund desk jobs."
    assert updated["title"] == "Careers"
    assert len(ok(owner.client, "knowledge.search", {"query": "refund"})["results"]) == 3
    assert ok(owner.client, "knowledge.delete", {"id": made[2]["id"]})["success"] is True


# -- sessions ------------------------------------------------------------------------------


def test_sessions_lifecycle(world):
    """create, list (ended hidden unless includeEnded; filters; totals), messages oldest first, end, delete."""
    owner, member = world["owner"], world["member"]
    widget = ok(owner.client, "widgets.create", {"name": "W", "domainWhitelist": ["https://a.example"]})
    first = ok(member.client, "sessions.create", {"widgetId": widget["id"], "metadata": {"page": "/pricing"}})
    second = ok(member.client, "sessions.create", {"mode": "meeting"})
    assert first["costUsd"] == "0.0000"
    assert first["endedAt"] is None
    assert first["mode"] == "text"
    for text in ("one", "two", "three"):
        ok(member.client, "sessions.sendMessage", {"sessionId": first["id"], "content": text})
    messages = ok(member.client, "sessions.listMessages", {"sessionId": first["id"]})
    assert [m["content"] for m in messages["messages"]] == ["one", "two", "three"]
    assert messages["total"] == 3
    assert (
        ok(member.client, "sessions.listMessages", {"sessionId": first["id"], "limit": 1, "offset": 2})["messages"][0][
            "content"
        ]
        == "three"
    )

    by_widget = ok(member.client, "sessions.list", {"widgetId": widget["id"]})
    assert [s["id"] for s in by_widget["sessions"]] == [first["id"]]
    assert by_widget["total"] == 1
    assert ok(member.client, "sessions.list", {"mode": "meeting"})["total"] == 1
    ended = ok(member.client, "sessions.end", {"id": first["id"]})
    assert ended["endedAt"] is not None
    assert [s["id"] for s in ok(member.client, "sessions.list")["sessions"]] == [second["id"]]
    assert ok(member.client, "sessions.list", {"includeEnded": True})["total"] == 2

    assert error(member.client, "sessions.end", {"id": first["id"]}) == (
        400,
        "BAD_REQUEST",
        "Session has already ended",
    )
    assert error(member.client, "sessions.sendMessage", {"sessionId": first["id"], "content": "late"})[:2] == (
        400,
        "BAD_REQUEST",
    )
    assert error(member.client, "sessions.delete", {"id": first["id"]})[1] == "FORBIDDEN"
    assert ok(owner.client, "sessions.delete", {"id": first["id"]})["success"] is True
    assert error(owner.client, "sessions.listMessages", {"sessionId": first["id"]})[1] == "NOT_FOUND"


def test_unknown_ids_are_not_found(world):
    """Random ids: NOT_FOUND with the original's messages, for every kind."""
    owner, nobody = world["owner"], str(uuid.uuid4())
    for path, what in (
        ("users.get", "User"),
        ("widgets.get", "Widget"),
        ("knowledge.get", "Document"),
        ("sessions.get", "Session"),
    ):
        assert error(owner.client, path, {"id": nobody}) == (404, "NOT_FOUND", f"{what} not found or access denied")


def test_listings_answer_each_row_as_its_single_row_read_does(world):
    """A page's rows (built by the out_row row factory) are exactly what the one-row paths
    answer for the same ids (built by out()): keys, ISO dates, ids, decimals, JSON columns,
    a null; and neither tenant's page holds the other's rows."""
    owner, other = world["owner"], world["b"]
    for user in (owner, other):
        ids = seed(user)
        ok(user.client, "sessions.end", {"id": ids["session"]})  # ended_at set: a date, not null
        ok(user.client, "sessions.create", {"mode": "meeting", "metadata": {"ünï": ["c", 1.5, None]}})
        for listed, key, get in (
            ("users.list", "users", "users.get"),
            ("widgets.list", "widgets", "widgets.get"),
            ("knowledge.list", "documents", "knowledge.get"),
            ("sessions.list", "sessions", "sessions.get"),
        ):
            page = ok(user.client, listed, {"includeEnded": True} if key == "sessions" else {})
            rows = page[key]
            assert rows, listed
            assert page["total"] == len(rows), (listed, page)
            for row in rows:
                assert row == ok(user.client, get, {"id": row["id"]}), listed
                assert row.get("tenantId", user.tenant) == user.tenant, listed
            if key == "sessions":
                assert {type(r["endedAt"]) for r in rows} == {str, type(None)}
                assert {r["costUsd"] for r in rows} == {"0.0000"}
    sent = ok(owner.client, "sessions.sendMessage", {"sessionId": seed(owner)["session"], "content": "x"})
    listed = ok(owner.client, "sessions.listMessages", {"sessionId": sent["sessionId"]})["messages"]
    assert sent in listed
    assert all(m["sessionId"] == sent["sessionId"] for m in listed)


def test_a_listings_ids_and_dates_are_what_one_row_reads_answer_in_any_time_zone(services):
    """listing_cursor loads uuid and timestamptz as text: a date cut from PostgreSQL's own text when
    the session is in UTC, through iso() otherwise. Either way each value equals what out() answers
    for the same value (JavaScript's toISOString: UTC, milliseconds truncated), whatever the session's
    TimeZone, with or without a fraction, and with the seconds-level offsets of old local times."""
    from platform_api.api.base import listing_cursor, out

    stamps = [
        "2026-12-07 17:29:10+00",
        "2026-12-07 17:29:10.5+00",
        "2026-12-07 17:29:10.120+00",
        "2026-12-07 17:29:10.123456+00",
        "2026-12-07 23:59:59.999999+00",
        "1900-06-01 00:00:00.0015+00",
        "9999-12-31 12:00:00.25+00",
    ]
    query = "SELECT %s::uuid AS id, " + ", ".join(f"%s::timestamptz AS t{i}" for i in range(len(stamps)))
    values = [uuid.uuid4(), *stamps]
    with psycopg.connect(services.direct_dsn(), autocommit=True) as conn:
        for zone in ("UTC", "Etc/UTC", "Asia/Kolkata", "America/St_Johns", "Europe/Amsterdam"):
            conn.execute("SELECT set_config('TimeZone', %s, false)", (zone,))
            with listing_cursor(conn, psycopg.Cursor) as cur:
                listed = cur.execute(query, values).fetchone()
            row = conn.cursor(row_factory=psycopg.rows.dict_row).execute(query, values).fetchone()
            assert listed == out(row), zone
            assert listed["id"] == str(values[0])
            assert listed["t1"] == "2026-12-07T17:29:10.500Z", zone
            assert listed["t4"] == "2026-12-07T23:59:59.999Z", zone


def test_json_columns_answer_the_exact_value_in_listings_and_one_row_reads(world):
    """A listing sends json/jsonb values as PostgreSQL's text, never parsed (RawJSON); a one-row
    read parses them, and its 31-digit integer sends the body through json (orjson stops at 64
    bits). Both answer exactly what was stored: the integer to the last digit, non-ASCII keys,
    nesting. The other tenant's listing does not hold the row."""
    owner, other = world["owner"], world["b"]
    metadata = {"big": 1234567890123456789012345678901, "ünï": ["c", 1.5, None, {"deep": [True]}]}
    created = ok(owner.client, "sessions.create", {"mode": "meeting", "metadata": metadata})
    assert created["metadata"] == metadata
    listed = {r["id"]: r for r in ok(owner.client, "sessions.list", {"includeEnded": True})["sessions"]}
    assert listed[created["id"]]["metadata"] == metadata
    assert ok(owner.client, "sessions.get", {"id": created["id"]})["metadata"] == metadata
    theirs = ok(other.client, "sessions.list", {"includeEnded": True})["sessions"]
    assert created["id"] not in {r["id"] for r in theirs}
