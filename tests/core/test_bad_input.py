"""Hostile and sloppy request bodies: every one is answered in the service's
error style with a 4xx and a message, never a 500.

The clients here do not re-raise server exceptions, so a crash shows up as a
500 status that the assertions catch.
"""

import json

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from compute.catalog import seed_flavors
from compute.models import Flavor, KeyPair
from identity.choices import Role
from identity.models import ApplicationCredential

from ..factories import make_project, make_user, token_for

pytestmark = pytest.mark.django_db

PUBLIC_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGw6ddffhfrBCFkiIWdOjlgwOhWKLgyUjp1bpYmqs/Ai test"


def client(user=None, project=None):
    api = APIClient(raise_request_exception=False)
    if user is not None:
        api.credentials(HTTP_X_AUTH_TOKEN=token_for(user, project))
    return api


class Cloud:
    def __init__(self):
        seed_flavors()
        self.project = make_project("victim")
        self.member = make_user(self.project, Role.MEMBER, username="member", password="member-pass")
        ops = make_project("ops")
        self.operator = make_user(ops, Role.ADMIN, username="ops", staff=True)
        self.anonymous = client()
        self.member_api = client(self.member, self.project)
        self.operator_api = client(self.operator, ops)


@pytest.fixture
def cloud(db):
    return Cloud()


# (name, client attribute, method, path template, error style, a valid body)
ENDPOINTS = {
    "token": ("anonymous", "post", "/identity/v3/auth/tokens", "keystone",
              {"auth": {"identity": {"methods": ["password"], "password": {
                  "user": {"name": "member", "domain": {"id": "default"}, "password": "member-pass"}}}}}),
    "app-credential": ("member_api", "post", "/identity/v3/users/{user}/application_credentials", "keystone",
                       {"application_credential": {"name": "robot"}}),
    "flavor": ("operator_api", "post", "/compute/v2.1/flavors", "nova",
               {"flavor": {"name": "tiny", "ram": 64, "vcpus": 1, "disk": 0, "id": "tiny"}}),
    "keypair": ("member_api", "post", "/compute/v2.1/os-keypairs", "nova",
                {"keypair": {"name": "k", "public_key": PUBLIC_KEY}}),
    "quota-set": ("operator_api", "put", "/compute/v2.1/os-quota-sets/{project}", "nova",
                  {"quota_set": {"instances": 10}}),
    "extra-specs": ("operator_api", "post", "/compute/v2.1/flavors/50/os-extra_specs", "nova",
                    {"extra_specs": {"hw:cpu_policy": "shared"}}),
}


def send(cloud, endpoint, body, content_type="application/json"):
    who, method, path, _style, _valid = ENDPOINTS[endpoint]
    path = path.format(user=cloud.member.pk, project=cloud.project.pk)
    if not isinstance(body, bytes | str):
        body = json.dumps(body)
    return getattr(cloud, who).generic(method.upper(), path, body, content_type=content_type)


def assert_error(response, endpoint, status):
    """``status`` in the service's own error body, with a message."""
    style = ENDPOINTS[endpoint][3]
    assert response.status_code == status, (endpoint, response.status_code, response.content[:300])
    body = response.json()
    if style == "keystone":
        assert set(body) == {"error"}
        error = body["error"]
        assert error["code"] == status and error["title"]
    else:
        assert len(body) == 1
        key, error = next(iter(body.items()))
        assert key == {400: "badRequest", 403: "forbidden", 413: "overLimit", 415: "badMediaType"}[status]
        assert error["code"] == status
    assert isinstance(error["message"], str) and error["message"].strip()
    return error["message"]


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_the_valid_body_works(cloud, endpoint):
    """The baseline: each endpoint accepts its valid body, so every 400 below
    is about the one thing that was broken."""
    response = send(cloud, endpoint, ENDPOINTS[endpoint][4])
    assert response.status_code in (200, 201), response.content


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("raw", ['{"auth": ', "{'single': 'quotes'}", "{,}", '{"a": 1}}', "nul",
                                 '{"a": NaN}', '{"a": Infinity}', '{"a": -Infinity}'],
                         ids=["truncated", "python-dict", "comma", "trailing", "bad-literal", "nan", "inf", "-inf"])
def test_malformed_json_is_400(cloud, endpoint, raw):
    message = assert_error(send(cloud, endpoint, raw), endpoint, 400)
    assert "JSON" in message or "body" in message


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_invalid_utf8_is_400(cloud, endpoint):
    assert_error(send(cloud, endpoint, b'{"name": "\xff\xfe"}'), endpoint, 400)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_deeply_nested_json_is_400(cloud, endpoint):
    # Small enough for the size limit, deep enough to exhaust a recursive parser.
    body = "[" * 200_000 + "]" * 200_000
    assert len(body) < settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    assert_error(send(cloud, endpoint, body), endpoint, 400)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("raw", ["[]", '["auth"]', '"auth"', "42", "null", "true"])
def test_json_that_is_not_an_object_is_400(cloud, endpoint, raw):
    message = assert_error(send(cloud, endpoint, raw), endpoint, 400)
    assert "object" in message


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("raw", ["", "{}", "   "], ids=["empty", "empty-object", "blank"])
def test_missing_body_is_400(cloud, endpoint, raw):
    assert_error(send(cloud, endpoint, raw), endpoint, 400)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_body_over_the_limit_is_413(cloud, endpoint):
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    assert limit == 1024 * 1024
    body = json.dumps({"padding": "x" * limit})
    assert_error(send(cloud, endpoint, body), endpoint, 413)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_body_just_under_the_limit_is_parsed(cloud, endpoint):
    """The limit is the limit: a body of exactly the limit is read (and then
    refused for its content, not its size)."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    body = json.dumps({"padding": ""})
    body = body.replace('""', '"' + "x" * (limit - len(body)) + '"')
    assert len(body) == limit
    assert_error(send(cloud, endpoint, body), endpoint, 400)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"])
def test_other_content_types_are_refused(cloud, endpoint, content_type):
    response = send(cloud, endpoint, json.dumps(ENDPOINTS[endpoint][4]), content_type=content_type)
    assert response.status_code in (400, 415), response.content
    assert_error(response, endpoint, response.status_code)


def test_nothing_was_created_by_the_refused_requests(cloud):
    """Run the worst of the above in one go; not a row may appear."""
    for endpoint in ENDPOINTS:
        for raw in ("[]", '{"a": NaN}', "[" * 50_000, json.dumps({"padding": "x" * 2_000_000})):
            assert send(cloud, endpoint, raw).status_code in (400, 413)
    assert not KeyPair.objects.exists()
    assert not ApplicationCredential.objects.exists()
    assert Flavor.objects.count() == 6


# --- Wrong types, unknown fields, bad names, per endpoint --------------------------

def token_body(**user):
    base = {"name": "member", "domain": {"id": "default"}, "password": "member-pass"}
    base.update(user)
    return {"auth": {"identity": {"methods": ["password"], "password": {"user": base}}}}


@pytest.mark.parametrize("body", [
    token_body(name=123, id=None),
    token_body(password=123),
    token_body(password=None),
    token_body(domain="Default"),
    {"auth": {"identity": {"methods": "password", "password": token_body()["auth"]["identity"]["password"]}}},
    {"auth": {"identity": {"methods": [], "password": {}}}},
    {"auth": {"identity": {"methods": [1]}}},
    {"auth": {"identity": {"methods": ["password"], "password": "member-pass"}}},
    {"auth": {"identity": {"methods": ["password"], "password": {"user": "member"}}}},
    {"auth": {"identity": ["password"]}},
    {"auth": "password"},
    {"auth": {"identity": token_body()["auth"]["identity"], "scope": 7}},
    {"auth": {"identity": token_body()["auth"]["identity"], "scope": {"project": "victim"}}},
    {"auth": {"identity": {"methods": ["application_credential"], "application_credential": {"id": "x"}}}},
    {"auth": {"identity": {"methods": ["application_credential"],
                           "application_credential": {"name": "robot", "secret": "s"}}}},
], ids=["name-int", "password-int", "password-null", "domain-string", "methods-string", "methods-empty",
        "methods-int", "password-string", "user-string", "identity-list", "auth-string", "scope-int",
        "scope-project-string", "appcred-no-secret", "appcred-name-without-user"])
def test_token_request_with_wrong_types_is_400(cloud, body):
    assert_error(send(cloud, "token", body), "token", 400)


@pytest.mark.parametrize("name", ["", "x" * 256, "nobody"])
def test_token_for_unknown_or_absurd_user_names_is_401(cloud, name):
    response = send(cloud, "token", token_body(name=name))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == 401


def test_token_request_tolerates_unknown_fields_as_keystone_does(cloud):
    # Keystone's token schema has no additionalProperties: false; clients send extras.
    body = token_body(extra="x")
    body["auth"]["identity"]["future"] = {}
    body["auth"]["nonsense"] = 1
    assert send(cloud, "token", body).status_code == 201


@pytest.mark.parametrize("credential", [
    {"name": 123}, {"name": ""}, {"name": "   "}, {"name": "x" * 256}, {},
    {"name": "ok", "surprise": True},
    {"name": "ok", "expires_at": "tomorrow"}, {"name": "ok", "expires_at": 123},
    {"name": "ok", "secret": 12345678}, {"name": "ok", "secret": "short"},
    {"name": "ok", "roles": "admin"}, {"name": "ok", "roles": 5}, {"name": "ok", "roles": {"name": "member"}},
    {"name": "ok", "roles": [{"name": "emperor"}]}, {"name": "ok", "roles": [{"name": ["member"]}]},
    {"name": "ok", "unrestricted": "false"}, {"name": "ok", "unrestricted": 1},
], ids=["name-int", "name-empty", "name-blank", "name-256", "no-name", "unknown-field", "expires-text",
        "expires-int", "secret-int", "secret-short", "roles-string", "roles-int", "roles-object", "roles-unknown",
        "role-name-list", "unrestricted-string",
        "unrestricted-int"])
def test_application_credential_with_bad_fields_is_400(cloud, credential):
    response = send(cloud, "app-credential", {"application_credential": credential})
    assert_error(response, "app-credential", 400)
    assert not ApplicationCredential.objects.exists()


def flavor(**fields):
    base = {"name": "tiny", "ram": 64, "vcpus": 1, "disk": 0, "id": "tiny"}
    base.update(fields)
    return {"flavor": {k: v for k, v in base.items() if v is not ...}}


def bad_flavor(**fields):
    label = ",".join(f"{k}={'absent' if v is ... else repr(v)[:12]}" for k, v in fields.items())
    return pytest.param(flavor(**fields), id=label)


@pytest.mark.parametrize("body", [
    bad_flavor(name=123), bad_flavor(name=""), bad_flavor(name="   "), bad_flavor(name="x" * 256),
    bad_flavor(name=" padded "), bad_flavor(name=None), bad_flavor(name=...),
    bad_flavor(ram="abc"), bad_flavor(ram=1.5), bad_flavor(ram=True), bad_flavor(ram=0), bad_flavor(ram=-1),
    bad_flavor(ram=None), bad_flavor(ram=2**31), bad_flavor(vcpus=2**40), bad_flavor(disk=2**31),
    bad_flavor(swap=2**31), bad_flavor(vcpus="many"), bad_flavor(disk=-1), bad_flavor(disk=...),
    bad_flavor(swap="lots"), bad_flavor(**{"OS-FLV-EXT-DATA:ephemeral": -1}),
    bad_flavor(**{"os-flavor-access:is_public": "maybe"}), bad_flavor(**{"os-flavor-access:is_public": [True]}),
    bad_flavor(rxtx_factor="fast"), bad_flavor(rxtx_factor=0), bad_flavor(rxtx_factor=-1.0),
    bad_flavor(rxtx_factor=1e300), bad_flavor(id=""), bad_flavor(id="x" * 256), bad_flavor(id="has/slash"),
    bad_flavor(id=" leading"), bad_flavor(id="new\nline"), bad_flavor(id=["a"]), bad_flavor(surprise=1),
    pytest.param({"flavor": {"name": "tiny", "ram": 64, "vcpus": 1, "disk": 0}, "extra": {}}, id="top-level-extra"),
    pytest.param({"flavor": "tiny"}, id="flavor-string"), pytest.param({"flavor": None}, id="flavor-null"),
    pytest.param({"flavors": {"name": "tiny"}}, id="wrong-envelope"),
])
def test_flavor_with_bad_fields_is_400(cloud, body):
    assert_error(send(cloud, "flavor", body), "flavor", 400)
    assert Flavor.objects.count() == 6


def test_flavor_numbers_as_digit_strings_are_accepted_as_nova_does(cloud):
    response = send(cloud, "flavor", flavor(ram="128", vcpus="2", disk="10", swap=""))
    assert response.status_code == 200, response.content
    created = response.json()["flavor"]
    assert (created["ram"], created["vcpus"], created["disk"]) == (128, 2, 10)


def test_flavor_at_the_integer_limit_is_accepted(cloud):
    response = send(cloud, "flavor", flavor(ram=2**31 - 1))
    assert response.status_code == 200, response.content
    assert cloud.operator_api.get("/compute/v2.1/flavors/tiny").json()["flavor"]["ram"] == 2**31 - 1


@pytest.mark.parametrize("body", [
    {"keypair": {"name": 123, "public_key": PUBLIC_KEY}},
    {"keypair": {"name": "", "public_key": PUBLIC_KEY}},
    {"keypair": {"name": "  ", "public_key": PUBLIC_KEY}},
    {"keypair": {"name": "x" * 256, "public_key": PUBLIC_KEY}},
    {"keypair": {"public_key": PUBLIC_KEY}},
    {"keypair": {"name": "k", "public_key": 123}},
    {"keypair": {"name": "k", "public_key": ["ssh-ed25519"]}},
    {"keypair": {"name": "k", "public_key": PUBLIC_KEY, "surprise": 1}},
    {"keypair": {"name": "k", "public_key": PUBLIC_KEY}, "extra": 1},
    {"keypair": "k"},
    {"keypairs": {"name": "k"}},
], ids=["name-int", "name-empty", "name-blank", "name-256", "no-name", "key-int", "key-list", "unknown-field",
        "unknown-top-level", "keypair-string", "wrong-envelope"])
def test_keypair_with_bad_fields_is_400(cloud, body):
    assert_error(send(cloud, "keypair", body), "keypair", 400)
    assert not KeyPair.objects.exists()


@pytest.mark.parametrize("body", [
    {"quota_set": {"instances": "abc"}}, {"quota_set": {"instances": 1.5}}, {"quota_set": {"instances": True}},
    {"quota_set": {"instances": -2}}, {"quota_set": {"instances": 2**31}}, {"quota_set": {"cores": 10**30}},
    {"quota_set": {"instances": None}}, {"quota_set": {"instances": [1]}},
    {"quota_set": {"surprise": 1}}, {"quota_set": {"instances": 1}, "extra": 1},
    {"quota_set": {"instances": 10, "cores": "abc"}},  # the good value must not be half-applied
    {"quota_set": []}, {"quota_set": "lots"}, {"quota": {"instances": 1}},
], ids=lambda body: json.dumps(body)[:50])
def test_quota_set_with_bad_fields_is_400(cloud, body):
    assert_error(send(cloud, "quota-set", body), "quota-set", 400)
    shown = cloud.operator_api.get(f"/compute/v2.1/os-quota-sets/{cloud.project.pk}").json()["quota_set"]
    assert shown["instances"] == 32 and shown["cores"] == 32


def test_quota_set_update_by_a_member_is_403(cloud):
    response = cloud.member_api.put(f"/compute/v2.1/os-quota-sets/{cloud.project.pk}",
                                    {"quota_set": {"instances": 1000}}, format="json")
    assert_error(response, "quota-set", 403)


@pytest.mark.parametrize("body", [
    {"extra_specs": {"k": True}}, {"extra_specs": {"k": None}}, {"extra_specs": {"k": {"nested": 1}}},
    {"extra_specs": {"": "v"}}, {"extra_specs": {"k" * 256: "v"}}, {"extra_specs": "k=v"},
    {"extra_specs": {"k": "v"}, "extra": 1},
], ids=lambda body: json.dumps(body)[:40])
def test_extra_specs_with_bad_fields_are_400(cloud, body):
    assert_error(send(cloud, "extra-specs", body), "extra-specs", 400)
    assert Flavor.objects.get(pk="50").extra_specs == {}


@pytest.mark.parametrize("params", [{"limit": 10**30}, {"minRam": 10**30}, {"minDisk": 10**30},
                                    {"marker": "x" * 10_000}, {"limit": "1e3"}, {"minRam": "\x00"}])
def test_absurd_query_parameters_are_never_500(cloud, params):
    response = cloud.member_api.get("/compute/v2.1/flavors/detail", params)
    assert response.status_code in (200, 400), response.content
    if response.status_code == 400:
        assert_error(response, "flavor", 400)
