"""atlas publish (to a local bare repository), atlas serve, and the Pages workflow."""

from __future__ import annotations

import subprocess
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from atlas.cli import main
from atlas.errors import AtlasError
from atlas.site.publish import publish
from atlas.site.serve import make_server
from tests.site_support import sample_site

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    return sample_site(tmp_path_factory)


def git(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture()
def project(tmp_path):
    """A project repository with one commit and a bare `origin`."""
    origin = tmp_path / "origin.git"
    git("init", "--quiet", "--bare", str(origin))
    work = tmp_path / "project"
    work.mkdir()
    git("init", "--quiet", cwd=work)
    (work / "README.md").write_text("atlas\n", encoding="utf-8")
    git("add", "README.md", cwd=work)
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "--quiet", "-m", "start", cwd=work)
    git("remote", "add", "origin", str(origin), cwd=work)
    return work, origin


def test_publish_pushes_one_commit_without_history(site, tmp_path, project):
    work, _ = project
    remote = tmp_path / "pages.git"
    git("init", "--quiet", "--bare", str(remote))
    for _ in range(2):  # publishing again replaces the branch: still one commit
        done = publish(site, str(remote), project=work)
    assert done.branch == "gh-pages" and done.source == git("rev-parse", "HEAD", cwd=work)
    log = git("--git-dir", str(remote), "log", "--format=%H %s", "gh-pages").splitlines()
    assert len(log) == 1 and log[0].startswith(done.commit)
    assert "built from" in log[0]
    files = set(git("--git-dir", str(remote), "ls-tree", "-r", "--name-only", "gh-pages").splitlines())
    site_files = {p.relative_to(site).as_posix() for p in site.rglob("*") if p.is_file()}
    assert files == site_files and {".nojekyll", "index.html", "classes/0607.html"} <= files
    assert done.files == len(files)
    page = git("--git-dir", str(remote), "show", "gh-pages:classes/0607.html")
    assert page == (site / "classes/0607.html").read_text(encoding="utf-8").rstrip("\n")


def test_publish_to_origin_refuses_a_dirty_project(site, project):
    work, origin = project
    (work / "README.md").write_text("changed\n", encoding="utf-8")
    with pytest.raises(AtlasError, match="uncommitted changes .*README.md"):
        publish(site, project=work)
    git("checkout", "README.md", cwd=work)
    (work / "notes.txt").write_text("untracked files do not count\n", encoding="utf-8")
    done = publish(site, project=work)
    assert done.remote == str(origin)
    assert len(git("--git-dir", str(origin), "log", "--oneline", "gh-pages").splitlines()) == 1
    refs = git("--git-dir", str(origin), "for-each-ref", "--format=%(refname)").splitlines()
    assert refs == ["refs/heads/gh-pages"]  # only the pages branch was pushed


def test_publish_refuses_a_missing_site(site, tmp_path, project):
    work, _ = project
    with pytest.raises(AtlasError, match="holds no built site.*atlas build"):
        publish(tmp_path / "nothing", project=work)
    with pytest.raises(AtlasError, match="no git remote 'origin'"):
        (tmp_path / "lone").mkdir()
        git("init", "--quiet", cwd=tmp_path / "lone")
        publish(site, project=tmp_path / "lone")


def test_cli_publish(site, tmp_path, capsys):
    remote = tmp_path / "r.git"
    git("init", "--quiet", "--bare", str(remote))
    assert main(["publish", "--out", str(site), "--remote", str(remote), "--branch", "pages"]) == 0
    assert "as the single commit" in capsys.readouterr().out
    assert git("--git-dir", str(remote), "rev-parse", "--verify", "pages")


def test_serve_answers_pages_and_404(site):
    server = make_server(site, 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}/"
        with urllib.request.urlopen(base + "classes/0607.html", timeout=10) as r:
            assert r.status == 200 and "jack-o&#39;-lantern" in r.read().decode()
        with urllib.request.urlopen(base + "data/search-index.js", timeout=10) as r:
            assert r.headers["Content-Type"].startswith("text/javascript")
        thumb = next(site.glob("media/*/thumb.webp")).relative_to(site).as_posix()
        with urllib.request.urlopen(base + thumb, timeout=10) as r:
            assert r.headers["Content-Type"] == "image/webp"
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(base + "classes/9999.html", timeout=10)
        assert err.value.code == 404 and "Page not found" in err.value.read().decode()
    finally:
        server.shutdown()
        server.server_close()
    with pytest.raises(AtlasError, match="no built site"):
        make_server(site.parent / "elsewhere", 0)


def test_cli_serve_prints_its_port(site):
    code = (
        "import sys, threading\n"
        "import atlas.site.serve as s\n"
        "orig = s.make_server\n"
        "def wrapped(*a, **k):\n"
        "    srv = orig(*a, **k)\n"
        "    threading.Timer(0.5, srv.shutdown).start()\n"
        "    return srv\n"
        "s.make_server = wrapped\n"
        "from atlas.cli import main\n"
        f"sys.exit(main(['serve', '--out', {str(site)!r}, '--port', '0']))\n"
    )
    done = subprocess.run(["python", "-c", code], capture_output=True, text=True, timeout=60,
                          executable=str(REPO / ".venv/bin/python"))
    assert done.returncode == 0, done.stderr
    assert "serving" in done.stdout and "http://127.0.0.1:" in done.stdout and ":0/" not in done.stdout


def test_pages_workflow_deploys_with_the_official_actions():
    workflow = yaml.safe_load((REPO / ".github/workflows/pages.yml").read_text(encoding="utf-8"))
    assert workflow["permissions"]["pages"] == "write" and workflow["permissions"]["id-token"] == "write"
    steps = [s for job in workflow["jobs"].values() for s in job["steps"]]
    uses = [s.get("uses", "") for s in steps]
    assert any(u.startswith("actions/upload-pages-artifact@") for u in uses)
    assert any(u.startswith("actions/deploy-pages@") for u in uses)
    runs = "\n".join(s.get("run", "") for s in steps)
    assert "atlas build" in runs and "torch" not in runs.replace("no torch", "")
    assert workflow["jobs"]["deploy"]["environment"]["name"] == "github-pages"
