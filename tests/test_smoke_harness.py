from conftest import Caller, valid_body

from overplane.declarations import Resource


def test_create_then_retrieve(api: Caller, resource: Resource) -> None:
    created = api.post(resource.path, json=valid_body(resource))
    assert created.status_code == 201, created.text
    fetched = api.get(created.headers["location"])
    assert fetched.json() == created.json()
