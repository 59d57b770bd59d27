"""The real `openstack` CLI and openstacksdk against the live cloud.

Every command runs as a subprocess of python-openstackclient with a
clouds.yaml, exactly as a user would type it, and its `-f json` output is
parsed. Each invocation costs about a second, so each test makes few.

Not covered here, and why: `limits show --absolute` also asks the block
storage service for its limits (`GET /volume/v3/{project}/limits`), and
`quota show` without `--compute` asks block storage and network for theirs;
those APIs come with the storage and network issues. The compute half of
both is covered (`quota show --compute`, the SDK's `get_limits`, which is
the request `limits show` makes to Nova).
"""

import base64
import hashlib
import json

import openstack
import pytest
from cryptography.hazmat.primitives import serialization

from compute.catalog import DREAMCOMPUTE_FLAVORS

pytestmark = pytest.mark.live

def md5_fingerprint(public_line):
    digest = hashlib.md5(base64.b64decode(public_line.split()[1])).hexdigest()  # noqa: S324 - Nova's format
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


def test_token_issue_and_project_list(cli):
    token = cli.json("token", "issue")
    assert token["id"] and token["expires"]
    assert len(token["user_id"]) == 32 and len(token["project_id"]) == 32
    projects = cli.json("project", "list")
    assert projects == [{"ID": token["project_id"], "Name": "demo"}]


def test_flavor_list_shows_the_six_dreamcompute_flavors(cli):
    flavors = cli.json("flavor", "list")
    by_id = {f["ID"]: f for f in flavors}
    assert len(flavors) == 6
    for flavor_id, name, vcpus, ram, disk in DREAMCOMPUTE_FLAVORS:
        row = by_id[flavor_id]
        assert (row["Name"], row["VCPUs"], row["RAM"], row["Disk"], row["Is Public"]) == (name, vcpus, ram, disk,
                                                                                          True)
    assert sorted(by_id, key=int) == ["50", "100", "200", "300", "400", "500"]
    assert [by_id[i]["Name"] for i in ("50", "500")] == ["gp1.semisonic", "gp1.hyperspeed"]


def test_flavor_show_by_name(cli):
    # The client first tries GET /flavors/gp1.semisonic (404), then lists and matches the name.
    flavor = cli.json("flavor", "show", "gp1.semisonic")
    assert (flavor["id"], flavor["name"], flavor["vcpus"], flavor["ram"], flavor["disk"]) == \
        ("50", "gp1.semisonic", 1, 512, 80)
    assert flavor["os-flavor-access:is_public"] is True
    missing = cli.run("flavor", "show", "gp1.nonexistent", expect_ok=False)
    assert missing.returncode != 0
    assert "No Flavor found for gp1.nonexistent" in missing.stderr
    assert "500" not in missing.stderr and "Traceback" not in missing.stderr


def test_keypair_create_list_show_delete(cli, tmp_path):
    private_path = tmp_path / "cli-key"
    created = cli.json("keypair", "create", "--private-key", str(private_path), "cli-key")
    assert created["name"] == "cli-key"
    # The CLI generated the pair locally and imported the public half: the
    # server's fingerprint must be that of the key in the private file.
    private = serialization.load_ssh_private_key(private_path.read_bytes(), password=None)
    public = private.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                               serialization.PublicFormat.OpenSSH).decode()
    assert created["fingerprint"] == md5_fingerprint(public)

    listed = cli.json("keypair", "list")
    assert {"Name": "cli-key", "Fingerprint": created["fingerprint"]} in listed

    shown = cli.json("keypair", "show", "cli-key")
    assert (shown["name"], shown["fingerprint"], shown["type"]) == ("cli-key", created["fingerprint"], "ssh")
    assert shown["private_key"] is None

    cli.run("keypair", "delete", "cli-key")
    gone = cli.run("keypair", "show", "cli-key", expect_ok=False)
    assert gone.returncode != 0 and "No Keypair found for cli-key" in gone.stderr


def test_quota_show_compute(cli):
    rows = {row["Resource"]: row["Limit"] for row in cli.json("quota", "show", "--compute")}
    assert (rows["instances"], rows["cores"], rows["ram"], rows["key-pairs"]) == (32, 32, 65536, 100)
    assert (rows["floating_ips"], rows["server-groups"]) == (5, 10)


def test_quota_show_compute_usage(cli):
    rows = {row["Resource"]: row for row in cli.json("quota", "show", "--compute", "--usage")}
    assert rows["instances"]["Limit"] == 32 and rows["instances"]["In Use"] == 0
    assert rows["cores"]["Reserved"] == 0


def test_wrong_password_fails_with_an_auth_error(cli):
    done = cli.run("--os-password", "not-the-password", "flavor", "list", expect_ok=False)
    assert done.returncode != 0
    assert "The request you have made requires authentication. (HTTP 401)" in done.stderr
    assert done.stdout == ""


def test_revoked_token_no_longer_works(cli):
    token = cli.json("token", "issue")["id"]
    assert cli.with_token(token, "flavor", "list", "-f", "value", "-c", "Name").stdout.split()[0].startswith("gp1.")
    cli.run("token", "revoke", token)
    done = cli.with_token(token, "flavor", "list", expect_ok=False)
    assert done.returncode != 0
    assert "HTTP 401" in done.stderr
    assert "gp1." not in done.stdout


def test_application_credential_authenticates_until_deleted(cli):
    created = cli.json("application", "credential", "create", "cli-robot")
    assert created["Name"] == "cli-robot" and created["Secret"]
    assert [r["name"] for r in created["Roles"]] == ["member"]

    flavors = cli.with_application_credential(created["ID"], created["Secret"], "flavor", "list", "-f", "json")
    assert len(json.loads(flavors.stdout)) == 6

    cli.run("application", "credential", "delete", "cli-robot")
    after = cli.with_application_credential(created["ID"], created["Secret"], "flavor", "list", expect_ok=False)
    assert after.returncode != 0
    assert "HTTP 401" in after.stderr


@pytest.fixture(scope="module")
def sdk(live_cloud):
    conn = openstack.connect(auth_url=f"{live_cloud.url}/identity", username="demo", password="demo-live-pass",
                             project_name="demo", user_domain_name="Default", project_domain_name="Default",
                             region_name="RegionOne", load_yaml_config=False, load_envvars=False)
    yield conn
    conn.close()


def test_sdk_lists_and_finds_flavors(sdk):
    names = sorted(f.name for f in sdk.compute.flavors())
    assert names == sorted(f[1] for f in DREAMCOMPUTE_FLAVORS)
    flavor = sdk.compute.find_flavor("gp1.lightspeed")
    assert (flavor.id, flavor.vcpus, flavor.ram, flavor.disk, flavor.is_public) == ("300", 2, 4096, 80, True)
    assert sdk.compute.find_flavor("500").name == "gp1.hyperspeed"
    with pytest.raises(openstack.exceptions.NotFoundException):
        sdk.compute.find_flavor("gp1.nothing", ignore_missing=False)


def test_sdk_missing_flavor_is_not_found(sdk):
    with pytest.raises(openstack.exceptions.NotFoundException) as raised:
        sdk.compute.get_flavor("missing")
    assert raised.value.status_code == 404
    assert "Flavor missing could not be found." in str(raised.value)


def test_sdk_compute_limits(sdk):
    # The request `openstack limits show --absolute` makes to Nova.
    absolute = sdk.compute.get_limits().absolute
    assert (absolute.instances, absolute.total_cores, absolute.total_ram, absolute.keypairs) == (32, 32, 65536, 100)
    assert absolute.instances_used == 0


def test_sdk_keypair_round_trip(sdk):
    created = sdk.compute.create_keypair(name="sdk-key")
    try:
        assert created.private_key.startswith("-----BEGIN")
        fetched = sdk.compute.get_keypair("sdk-key")
        assert fetched.fingerprint == created.fingerprint == md5_fingerprint(created.public_key)
        assert fetched.private_key is None
    finally:
        sdk.compute.delete_keypair("sdk-key")
    with pytest.raises(openstack.exceptions.NotFoundException):
        sdk.compute.find_keypair("sdk-key", ignore_missing=False)
