import pytest

pytestmark = pytest.mark.django_db


def test_openapi_schema_and_docs_page_need_no_internet(client):
    schema = client.get("/api/schema/")
    assert schema.status_code == 200
    text = schema.content.decode()
    assert "/compute/v2.1/servers" in text and "/identity/v3/auth/tokens" in text
    docs = client.get("/api/docs/").content.decode()
    assert "redoc" in docs.lower()
    # Assets come from our own static files (the sidecar package), never a CDN.
    assert "cdn." not in docs and "jsdelivr" not in docs
