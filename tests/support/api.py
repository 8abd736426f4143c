"""The API tests' client and error reader (fixtures that use them are in tests/api/conftest.py)."""

from django.test import Client


class Api:
    """The test client speaking to /api/v1/ with a real ``Authorization: Bearer`` header."""

    def __init__(self, token: str | None, **defaults):
        headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
        self.client = Client(**headers, **defaults)
        self.token = token

    def _url(self, path: str) -> str:
        return "/api/v1" + path

    def get(self, path, params=None, **headers):
        return self.client.get(self._url(path), params or {}, **headers)

    def post(self, path, body=None, **headers):
        return self.client.post(
            self._url(path),
            body if body is not None else {},
            content_type="application/json",
            **headers,
        )

    def patch(self, path, body, **headers):
        return self.client.patch(self._url(path), body, content_type="application/json", **headers)

    def delete(self, path, **headers):
        return self.client.delete(self._url(path), **headers)


def error_of(response) -> dict:
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "field"}, body
    return body["error"]
