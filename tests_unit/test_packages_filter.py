"""packages_missing: an install task is skipped only when package_facts lists every one of its
packages as installed; anything it cannot judge is left to apt."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError

_PATH = Path(__file__).resolve().parents[1] / "plugins" / "filter" / "packages.py"
_spec = importlib.util.spec_from_file_location("packages_filter", _PATH)
pk = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(pk)

FACTS = {
    "packages": {
        "nginx": [{"name": "nginx", "version": "1.26.3-3", "arch": "amd64", "source": "apt"}],
        "redis-server": [{"name": "redis-server", "version": "5:8.0.2-3", "arch": "amd64", "source": "apt"}],
        "libc6": [
            {"name": "libc6", "version": "2.41-12", "arch": "amd64", "source": "apt"},
            {"name": "libc6", "version": "2.41-12", "arch": "i386", "source": "apt"},
        ],
    }
}


def test_installed_packages_are_not_missing():
    assert pk.packages_missing(["nginx", "redis-server", "libc6"], FACTS) == []


def test_one_missing_package_is_named_and_keeps_the_order():
    assert pk.packages_missing(["nginx", "prometheus", "redis-server", "certbot"], FACTS) == ["prometheus", "certbot"]


def test_a_single_name_is_a_list_of_one():
    assert pk.packages_missing("nginx", FACTS) == []
    assert pk.packages_missing("certbot", FACTS) == ["certbot"]


def test_without_package_facts_every_package_is_left_to_apt():
    assert pk.packages_missing(["nginx", "certbot"], {"distribution": "Debian"}) == ["nginx", "certbot"]
    assert pk.packages_missing(["nginx"], None) == ["nginx"]
    assert pk.packages_missing(["nginx"], {"packages": None}) == ["nginx"]


def test_names_apt_must_judge_are_always_missing():
    """A version, an architecture, a wildcard or a file is not a plain name: apt decides."""
    names = ["nginx=1.26.3-3", "nginx:amd64", "nginx*", "/tmp/x.deb", "Nginx"]
    assert pk.packages_missing(names, FACTS) == names


def test_an_empty_entry_counts_as_not_installed():
    assert pk.packages_missing(["nginx"], {"packages": {"nginx": []}}) == ["nginx"]


@pytest.mark.parametrize("bad", [None, 3, {"nginx": 1}, ["nginx", 3]])
def test_anything_but_names_is_refused(bad):
    with pytest.raises(AnsibleFilterError, match="packages_missing"):
        pk.packages_missing(bad, FACTS)
