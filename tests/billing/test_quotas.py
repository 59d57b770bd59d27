"""The quota engine: DreamCompute's defaults, overrides, unlimited, and the
row lock that keeps concurrent creators under the limit."""

import threading

import pytest
from django.db import connection, transaction

from billing import quotas
from billing.choices import QuotaResource
from compute import services as compute
from compute.models import KeyPair
from core.openstack.errors import OverQuota

from ..factories import make_project, make_user

# A fixed, valid key: importing it costs no RSA generation.
PUBLIC_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGw6ddffhfrBCFkiIWdOjlgwOhWKLgyUjp1bpYmqs/Ai quota@test"

DREAMCOMPUTE_DEFAULTS = {
    "instances": 32, "cores": 32, "ram": 65536, "key_pairs": 100, "server_groups": 10, "networks": 10,
    "subnets": 10, "ports": 50, "routers": 10, "floating_ips": 5, "security_groups": 10,
    "security_group_rules": 100, "volumes": 64, "gigabytes": 100, "snapshots": 64, "images": 20,
}


@pytest.fixture
def counted_instances(monkeypatch):
    """Let instances be counted from a number the test controls (the compute
    issue registers the real counter). The registry entry is restored after."""
    held = {"count": 0}
    monkeypatch.setitem(quotas._counters, QuotaResource.INSTANCES, None)
    quotas.register_counter("instances", lambda project, user: held["count"])
    return held


@pytest.mark.django_db
def test_defaults_are_dreamcomputes():
    assert {r.value: v for r, v in quotas.defaults().items()} == DREAMCOMPUTE_DEFAULTS


@pytest.mark.django_db
def test_a_project_without_overrides_gets_the_defaults():
    project = make_project()
    assert {r.value: v for r, v in quotas.limits_for(project).items()} == DREAMCOMPUTE_DEFAULTS


@pytest.mark.django_db
def test_changed_default_applies_to_every_project_without_an_override():
    first, second = make_project(), make_project()
    quotas.set_limit(second, "floating_ips", 2)
    quotas.set_limit(None, "floating_ips", 9)
    assert quotas.defaults()[QuotaResource.FLOATING_IPS] == 9
    assert quotas.limits_for(first)[QuotaResource.FLOATING_IPS] == 9
    assert quotas.limits_for(second)[QuotaResource.FLOATING_IPS] == 2


@pytest.mark.django_db
def test_project_override_touches_only_that_project_and_resource():
    project, other = make_project(), make_project()
    quotas.set_limit(project, "instances", 3)
    quotas.set_limit(project, "instances", 4)  # a second set replaces, never duplicates
    limits = quotas.limits_for(project)
    assert limits[QuotaResource.INSTANCES] == 4
    assert limits[QuotaResource.CORES] == 32
    assert quotas.limits_for(other)[QuotaResource.INSTANCES] == 32
    assert project.quotas.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("limit", [-2, "5", 5.0, True, None, 2**31])
def test_set_limit_refuses_nonsense(limit):
    with pytest.raises(ValueError):
        quotas.set_limit(make_project(), "instances", limit)


@pytest.mark.django_db
def test_set_limit_refuses_unknown_resources():
    with pytest.raises(ValueError):
        quotas.set_limit(make_project(), "unicorns", 5)


@pytest.mark.django_db
def test_reserve_within_the_limit_passes_and_beyond_it_names_the_quota(counted_instances):
    project = make_project()
    quotas.set_limit(project, "instances", 3)
    counted_instances["count"] = 1
    quotas.reserve(project, {"instances": 2})  # 1 + 2 = 3: exactly the limit is fine
    with pytest.raises(OverQuota) as raised:
        quotas.reserve(project, {"instances": 3})
    message = str(raised.value.detail)
    assert "instances" in message
    assert "requested 3" in message and "used 1 of 3" in message
    assert raised.value.status_code == 403  # Nova's status; other services map it (see errors.py)


@pytest.mark.django_db
def test_zero_limit_refuses_everything_and_releases_are_free(counted_instances):
    project = make_project()
    quotas.set_limit(project, "instances", 0)
    with pytest.raises(OverQuota):
        quotas.reserve(project, {"instances": 1})
    quotas.reserve(project, {"instances": 0, "cores": -4})  # nothing asked: nothing checked


@pytest.mark.django_db
def test_minus_one_is_unlimited(counted_instances):
    project = make_project()
    quotas.set_limit(project, "instances", -1)
    counted_instances["count"] = 10**6
    quotas.reserve(project, {"instances": 10**6})
    usage = {u.resource: u for u in quotas.summary(project)}[QuotaResource.INSTANCES]
    assert usage.unlimited and usage.limit == -1 and usage.percent == 0


@pytest.mark.django_db
def test_summary_counts_key_pairs_per_user():
    project = make_project()
    user, other = make_user(project), make_user(project)
    compute.create_keypair(user=user, project=project, name="one", public_key=PUBLIC_KEY)
    compute.create_keypair(user=user, project=project, name="two", public_key=PUBLIC_KEY)
    compute.create_keypair(user=other, project=project, name="one", public_key=PUBLIC_KEY)
    mine = {u.resource: u for u in quotas.summary(project, user)}
    assert mine[QuotaResource.KEY_PAIRS].used == 2
    assert mine[QuotaResource.KEY_PAIRS].percent == 2
    # The project view leaves per-user resources out.
    assert QuotaResource.KEY_PAIRS not in {u.resource for u in quotas.summary(project)}


@pytest.mark.django_db
def test_key_pair_over_quota_is_refused_and_rolled_back():
    project = make_project()
    user = make_user(project)
    quotas.set_limit(project, "key_pairs", 1)
    compute.create_keypair(user=user, project=project, name="first", public_key=PUBLIC_KEY)
    with pytest.raises(OverQuota, match="key_pairs"):
        compute.create_keypair(user=user, project=project, name="second", public_key=PUBLIC_KEY)
    assert list(KeyPair.objects.filter(user=user).values_list("name", flat=True)) == ["first"]


@pytest.mark.django_db
def test_quota_sets_api_shows_overrides_and_defaults(tenant_a, tenant_b, operator):
    quotas.set_limit(tenant_a.project, "cores", 64)
    own = tenant_a.api.get(f"/compute/v2.1/os-quota-sets/{tenant_a.project.pk}")
    assert own.status_code == 200
    quota_set = own.json()["quota_set"]
    assert quota_set["id"] == tenant_a.project.pk
    assert (quota_set["cores"], quota_set["instances"], quota_set["key_pairs"], quota_set["floating_ips"]) == \
        (64, 32, 100, 5)
    defaults = tenant_a.api.get(f"/compute/v2.1/os-quota-sets/{tenant_a.project.pk}/defaults").json()["quota_set"]
    assert defaults["cores"] == 32
    # Another project's quotas are not a member's business.
    assert tenant_a.api.get(f"/compute/v2.1/os-quota-sets/{tenant_b.project.pk}").status_code == 403

    updated = operator.api.put(f"/compute/v2.1/os-quota-sets/{tenant_b.project.pk}",
                               {"quota_set": {"instances": -1, "ram": "1024"}}, format="json")
    assert updated.status_code == 200
    assert updated.json()["quota_set"]["instances"] == -1 and updated.json()["quota_set"]["ram"] == 1024
    absolute = tenant_b.api.get("/compute/v2.1/limits").json()["limits"]["absolute"]
    assert (absolute["maxTotalInstances"], absolute["maxTotalRAMSize"]) == (-1, 1024)


@pytest.mark.django_db(transaction=True)
def test_reserve_outside_a_transaction_raises():
    project = make_project()
    with pytest.raises(RuntimeError, match="inside the creating transaction"):
        quotas.reserve(project, {"key_pairs": 1})
    with transaction.atomic():
        quotas.reserve(project, {"key_pairs": 1})


@pytest.mark.django_db(transaction=True)
def test_concurrent_creators_never_exceed_the_limit():
    """50 threads, each on its own PostgreSQL connection, race to create a key
    pair under a limit of 20: the project row lock lets exactly 20 through."""
    assert connection.vendor == "postgresql"
    project = make_project()
    user = make_user(project)
    quotas.set_limit(project, "key_pairs", 20)
    threads_count, limit = 50, 20
    barrier = threading.Barrier(threads_count)
    outcomes = [None] * threads_count

    def create(index):
        try:
            barrier.wait(timeout=30)
            compute.create_keypair(user=user, project=project, name=f"race-{index}", public_key=PUBLIC_KEY)
            outcomes[index] = "created"
        except OverQuota:
            outcomes[index] = "over quota"
        except Exception as exc:
            outcomes[index] = repr(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=create, args=(i,)) for i in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads)

    assert outcomes.count("created") == limit, outcomes
    assert outcomes.count("over quota") == threads_count - limit, outcomes
    assert KeyPair.objects.filter(user=user).count() == limit


@pytest.mark.django_db
def test_quota_set_detail_reports_usage(tenant_a, operator):
    """`openstack quota show --usage` reads os-quota-sets/{id}/detail."""
    compute.create_keypair(user=tenant_a.member, project=tenant_a.project, name="k", public_key=PUBLIC_KEY)
    quotas.set_limit(tenant_a.project, "key_pairs", 3)
    detail = tenant_a.api.get(f"/compute/v2.1/os-quota-sets/{tenant_a.project.pk}/detail")
    assert detail.status_code == 200
    quota_set = detail.json()["quota_set"]
    assert quota_set["id"] == tenant_a.project.pk
    assert quota_set["key_pairs"] == {"limit": 3, "in_use": 1, "reserved": 0}
    assert quota_set["instances"] == {"limit": 32, "in_use": 0, "reserved": 0}
    assert quota_set["metadata_items"]["limit"] == 128
    refused = operator.api.put(f"/compute/v2.1/os-quota-sets/{tenant_a.project.pk}/detail",
                               {"quota_set": {"instances": 1}}, format="json")
    assert refused.status_code == 400
