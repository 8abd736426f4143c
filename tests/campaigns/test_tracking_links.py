import pytest

from analytics.tracking import (
    BadTrackingToken,
    ClickUrls,
    click_token,
    open_token,
    read_click_token,
    read_open_token,
)


def test_click_tokens_round_trip_and_the_batch_builder_agrees():
    token = click_token(12345, 67)
    assert read_click_token(token) == (12345, 67)
    assert ClickUrls([67]).for_delivery(12345)[0].endswith("/t/c/" + token)
    assert read_open_token(open_token(99)) == 99


@pytest.mark.parametrize("token", ["", "abc", "9ix.1v.AAAAAAAAAAAAAAAA", "1.2.3.4"])
def test_tampered_or_malformed_click_tokens_are_refused(token):
    with pytest.raises(BadTrackingToken):
        read_click_token(token)


def test_a_token_for_one_delivery_does_not_verify_for_another():
    delivery, link, mac = click_token(5, 6).split(".")
    with pytest.raises(BadTrackingToken):
        read_click_token(f"{delivery}1.{link}.{mac}")
    with pytest.raises(BadTrackingToken):
        read_open_token(click_token(5, 6))


def test_tokens_survive_a_key_rotation(settings):
    token = click_token(1, 2)
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "another-key-entirely-0123456789-0123456789-0123456789"
    assert read_click_token(token) == (1, 2)
