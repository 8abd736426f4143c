import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image as PILImage

from templates_app.services import ImageRejected, image_upload

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


def _jpeg_with_exif(width=3000, height=1500) -> bytes:
    image = PILImage.new("RGB", (width, height), (200, 30, 30))
    exif = PILImage.Exif()
    exif[0x010F] = "SecretCam"  # Make
    exif[0x8825] = {2: (48.0, 51.0, 24.0)}  # GPS latitude
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif, quality=95)
    return out.getvalue()


def test_images_are_resized_to_email_width_reencoded_and_stripped_of_metadata(settings):
    data = _jpeg_with_exif()
    assert b"SecretCam" in data
    upload = SimpleUploadedFile("photo.jpg", data, content_type="image/jpeg")
    image = image_upload(upload=upload, alt_text="A red square")
    assert (image.width, image.height, image.content_type) == (1200, 600, "image/jpeg")
    stored = image.file.read()
    assert b"SecretCam" not in stored
    with PILImage.open(io.BytesIO(stored)) as reopened:
        assert reopened.size == (1200, 600)
        assert not reopened.getexif()
    assert image.absolute_url.startswith(settings.SITE_URL + "/")
    assert image.alt_text == "A red square"


def test_transparent_pngs_stay_png():
    out = io.BytesIO()
    PILImage.new("RGBA", (100, 40), (0, 0, 0, 0)).save(out, "PNG")
    image = image_upload(upload=SimpleUploadedFile("logo.png", out.getvalue()), alt_text="Logo")
    assert (image.content_type, image.width, image.height) == ("image/png", 100, 40)


def test_a_non_image_with_an_image_extension_is_refused():
    upload = SimpleUploadedFile("invoice.png", b"%PDF-1.4 not an image at all")
    with pytest.raises(ImageRejected, match="not an image"):
        image_upload(upload=upload, alt_text="x")


def test_a_script_disguised_as_a_gif_is_refused():
    upload = SimpleUploadedFile("x.gif", b"GIF89a<script>alert(1)</script>")
    with pytest.raises(ImageRejected):
        image_upload(upload=upload, alt_text="x")


def test_decompression_bombs_are_refused_before_decoding():
    # A 20000x20000 PNG compresses to a few hundred KB but would need 1.2 GB decoded.
    out = io.BytesIO()
    PILImage.new("L", (20000, 20000)).save(out, "PNG")
    assert len(out.getvalue()) < 2_000_000
    with pytest.raises(ImageRejected, match="too large"):
        image_upload(upload=SimpleUploadedFile("bomb.png", out.getvalue()), alt_text="x")


def test_alt_text_is_required():
    out = io.BytesIO()
    PILImage.new("RGB", (10, 10)).save(out, "PNG")
    with pytest.raises(ImageRejected, match="alt text"):
        image_upload(upload=SimpleUploadedFile("a.png", out.getvalue()), alt_text="  ")


def test_animated_gifs_stay_animated_and_are_resized():
    frames = [PILImage.new("RGB", (1600, 400), colour) for colour in ("red", "green", "blue")]
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], duration=200, loop=0)
    image = image_upload(upload=SimpleUploadedFile("a.gif", out.getvalue()), alt_text="Blink")
    assert (image.content_type, image.width, image.height) == ("image/gif", 1200, 300)
    with PILImage.open(image.file) as reopened:
        assert reopened.n_frames == 3
