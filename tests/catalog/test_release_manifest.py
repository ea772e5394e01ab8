"""Releases as content: a signed manifest of every file, published with its wheels into the
catalog; verification, import from a folder, list and prune through `manage.py release`."""

from __future__ import annotations

import datetime as dt
import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from catalog import release as rel
from catalog import releases
from catalog.models import ContentEntry
from catalog.services import CatalogError, blob_store
from certificates import services as cert_services
from tests.catalog.wheels import toy_wheel

pytestmark = pytest.mark.django_db

SOON = dt.timedelta(days=30)


@pytest.fixture
def wheels(tmp_path: Path) -> Path:
    folder = tmp_path / "wheels"
    toy_wheel(folder, "meshsite", "0.1.0", requires=("toy-dep>=1",))
    toy_wheel(folder, "toy-dep", "1.2.0")
    return folder


def _publish(folder: Path, **kwargs) -> releases.VerifiedRelease:
    return releases.release_publish(files=sorted(folder.glob("*.whl")),
                                    expires=timezone.now() + SOON, **kwargs)


def test_publish_signs_a_manifest_of_every_file(owner_token, wheels):
    release = _publish(wheels)
    manifest = release.manifest
    assert manifest["format"] == rel.FORMAT and manifest["version"] == "0.1.0"
    assert manifest["counter"] == 1
    assert [f["name"] for f in manifest["files"]] == sorted(p.name for p in wheels.glob("*.whl"))
    for item in manifest["files"]:
        digest, size = rel.file_digest(wheels / item["name"])
        assert (item["sha256"], item["size"]) == (digest, size)
        assert item["requiresPython"] == ">=3.11"
        assert blob_store().exists(item["sha256"]) and blob_store().exists(
            item["metadata"]["sha256"])
    entry = ContentEntry.objects.get(path="releases/1/manifest.json", is_current=True)
    assert entry.priority == 2 and entry.origin_callsign == "W1AW"
    assert releases.release_verify(document=release.document) == manifest
    # The same files again: a new counter, no new file versions.
    files_before = ContentEntry.objects.filter(path__startswith="releases/files/").count()
    assert _publish(wheels).counter == 2
    assert ContentEntry.objects.filter(path__startswith="releases/files/").count() == files_before
    assert releases.release_current().counter == 2


def test_a_changed_manifest_does_not_verify(owner_token, wheels):
    document = json.loads(_publish(wheels).raw)
    document["manifest"]["files"][0]["sha256"] = "0" * 64
    with pytest.raises(CatalogError) as caught:
        releases.release_verify(document=document)
    assert caught.value.code == "bad_release_signature"


def test_a_blacklisted_builder_is_not_served(owner_token, wheels):
    release = _publish(wheels)
    from certificates.selectors import station_get

    fingerprint = station_get().owner_fingerprint
    cert_services.certificate_blacklist(fingerprint=fingerprint, reason="test",
                                        created_by="owner", source="console")
    with pytest.raises(CatalogError) as caught:
        releases.release_verify(document=release.document)
    assert caught.value.code == "untrusted_release" and "blacklisted" in caught.value.detail


def test_wrong_files_are_refused_with_reasons(owner_token, tmp_path):
    only_dep = tmp_path / "dep"
    toy_wheel(only_dep, "toy-dep", "1.0")
    with pytest.raises(CatalogError, match="exactly one meshsite wheel"):
        _publish(only_dep)
    with pytest.raises(CatalogError, match="not in the future"):
        releases.release_publish(files=list(only_dep.glob("*.whl")),
                                 expires=timezone.now() - SOON)
    broken = tmp_path / "broken" / "meshsite-0.1.0-py3-none-any.whl"
    broken.parent.mkdir()
    broken.write_bytes(b"not a zip")
    with pytest.raises(CatalogError, match="not a readable wheel"):
        _publish(broken.parent)


def test_publishing_needs_a_claimed_station(db, wheels):
    with pytest.raises(CatalogError) as caught:
        _publish(wheels)
    assert caught.value.code == "not_claimed"


def test_export_then_import_checks_every_hash(owner_token, wheels, tmp_path):
    release = _publish(wheels)
    stick = tmp_path / "stick"
    assert releases.release_export(release=release, folder=stick) == 2
    imported = releases.release_import(folder=stick)
    assert imported.raw == release.raw  # the builder's signature is kept byte for byte
    victim = stick / release.manifest["files"][0]["name"]
    victim.write_bytes(victim.read_bytes() + b"x")
    with pytest.raises(CatalogError) as caught:
        releases.release_import(folder=stick)
    assert caught.value.code == "hash_mismatch"
    (stick / "manifest.json").write_text("{")
    with pytest.raises(CatalogError, match="not JSON"):
        releases.release_import(folder=stick)


def test_release_command_build_list_prune(owner_token, wheels, tmp_path):
    out, err = StringIO(), StringIO()
    call_command("release", "build", "--wheels", str(wheels), stdout=out, stderr=err)
    assert "counter 1: 2 files" in out.getvalue()
    assert "[1/2] publishing" in err.getvalue()
    call_command("release", "build", "--wheels", str(wheels), "--valid-days", "5",
                 stdout=StringIO(), stderr=StringIO())
    listing = StringIO()
    call_command("release", "list", stdout=listing)
    lines = listing.getvalue().splitlines()
    assert lines[0].startswith("* 0.1.0") and "counter 2" in lines[0]
    assert "counter 1" in lines[1]
    pruned = StringIO()
    call_command("release", "prune", "--keep", "1", stdout=pruned)
    assert "releases/1/manifest.json" in pruned.getvalue()
    with pytest.raises(CommandError, match=r"holds no \.whl"):
        call_command("release", "build", "--wheels", str(tmp_path), stdout=StringIO(),
                     stderr=StringIO())
    with pytest.raises(CommandError, match="--expires"):
        call_command("release", "build", "--wheels", str(wheels), "--expires", "tomorrow",
                     stdout=StringIO(), stderr=StringIO())
    with pytest.raises(CommandError, match="bad_priority"):
        call_command("release", "build", "--wheels", str(wheels), "--priority", "9",
                     stdout=StringIO(), stderr=StringIO())
