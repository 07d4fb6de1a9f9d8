"""atlas publish (to a local bare repository), atlas serve, and the Pages workflow."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from atlas.cli import main
from atlas.errors import AtlasError
from atlas.site.check import DEFAULT_BUDGET, Budget
from atlas.site.publish import publish
from atlas.site.serve import make_server
from tests.site_support import MODEL, sample_site

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
    assert files == site_files and {".nojekyll", "index.html", f"{MODEL}/classes/0607.html"} <= files
    assert done.files == len(files)
    page = git("--git-dir", str(remote), "show", f"gh-pages:{MODEL}/classes/0607.html")
    assert page == (site / MODEL / "classes/0607.html").read_text(encoding="utf-8").rstrip("\n")


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


def commits(git_dir: Path, branch: str) -> list[str]:
    return git("--git-dir", str(git_dir), "log", "--format=%H", branch).splitlines()


def test_publish_never_replaces_a_branch_atlas_did_not_publish(site, project):
    """`--branch main` must not force-push over the project's history."""
    work, origin = project
    git("push", "--quiet", "origin", "HEAD:refs/heads/main", cwd=work)
    history = commits(origin, "main")
    with pytest.raises(AtlasError, match=r"branch 'main' .* not published by atlas .*'start'.*--force") as info:
        publish(site, project=work, branch="main")
    assert "\n" not in str(info.value)
    assert commits(origin, "main") == history

    done = publish(site, project=work, branch="main", force=True)  # the user insisted
    assert commits(origin, "main") == [done.commit]
    again = publish(site, project=work, branch="main")  # now the tip is atlas's: no --force needed
    assert commits(origin, "main") == [again.commit]
    assert "Atlas-Publish: atlas " in git("--git-dir", str(origin), "log", "-1", "--format=%B", "main")


def test_publish_replaces_a_commit_of_an_older_atlas_publish(site, tmp_path, project):
    work, _ = project
    remote = tmp_path / "old.git"
    git("init", "--quiet", "--bare", str(remote))
    tree = git("--git-dir", str(remote), "mktree", cwd=tmp_path)  # the empty tree
    old = git("--git-dir", str(remote), "-c", "user.name=t", "-c", "user.email=t@t", "commit-tree", tree,
              "-m", "Publish atlas site built from 0123456789ab")
    git("--git-dir", str(remote), "update-ref", "refs/heads/gh-pages", old)
    done = publish(site, str(remote), project=work)
    assert commits(remote, "gh-pages") == [done.commit]


def _copy(site: Path, dest: Path) -> Path:
    shutil.copytree(site, dest)
    return dest


@pytest.mark.parametrize("damage", ["unfinished", "broken link", "over budget"])
def test_publish_pushes_nothing_but_a_finished_site_that_passes_its_check(site, tmp_path, project, damage):
    """A half-built site is refused with a non-zero exit code, never pushed."""
    work, _ = project
    remote = tmp_path / "pages.git"
    git("init", "--quiet", "--bare", str(remote))
    broken = _copy(site, tmp_path / "site")
    budget = DEFAULT_BUDGET
    if damage == "unfinished":  # what a build killed half-way leaves
        marker = json.loads((broken / ".atlas-site.json").read_text(encoding="utf-8"))
        (broken / ".atlas-site.json").write_text(json.dumps(dict(marker, complete=False)), encoding="utf-8")
        expected = "did not finish.*nothing pushed.*atlas build"
    elif damage == "broken link":
        (broken / MODEL / "classes/0500.html").unlink()
        expected = "fails its check, nothing pushed.*'0500.html' does not exist"
    else:
        budget = Budget(site_bytes=1024)
        expected = "fails its check, nothing pushed.*over the"
    with pytest.raises(AtlasError, match=expected):
        publish(broken, str(remote), project=work, budget=budget)
    assert git("--git-dir", str(remote), "for-each-ref") == ""


def test_a_failed_push_shows_all_of_gits_message(site, tmp_path, project):
    work, _ = project
    remote = tmp_path / "guarded.git"
    git("init", "--quiet", "--bare", str(remote))
    hook = remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'first reason: pages are frozen' >&2\n"
                    "echo 'second line of the hook' >&2\nexit 1\n")
    hook.chmod(0o755)
    with pytest.raises(AtlasError) as info:
        publish(site, str(remote), project=work)
    message = str(info.value)
    assert message.startswith("git push failed:") and "\n" not in message
    assert "first reason: pages are frozen" in message and "second line of the hook" in message


def test_cli_publish_takes_the_remote_from_the_configs_repository(site, tmp_path, project, monkeypatch, capsys):
    work, origin = project
    (work / "atlas.toml").write_text('site = "site"\n', encoding="utf-8")
    git("add", "atlas.toml", cwd=work)
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "--quiet", "-m", "config", cwd=work)
    elsewhere = tmp_path / "elsewhere"  # not a repository: the working directory must not matter
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["publish", "--config", str(work / "atlas.toml"), "--out", str(site)]) == 0
    assert str(origin) in capsys.readouterr().out
    assert len(commits(origin, "gh-pages")) == 1


def test_serve_answers_pages_and_404(site):
    server = make_server(site, 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}/"
        with urllib.request.urlopen(base + f"{MODEL}/classes/0607.html", timeout=10) as r:
            assert r.status == 200 and "jack-o&#39;-lantern" in r.read().decode()
        with urllib.request.urlopen(base + "data/search-index.js", timeout=10) as r:
            assert r.headers["Content-Type"].startswith("text/javascript")
        thumb = next(site.glob("media/*/thumb.webp")).relative_to(site).as_posix()
        with urllib.request.urlopen(base + thumb, timeout=10) as r:
            assert r.headers["Content-Type"] == "image/webp"
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(base + f"{MODEL}/classes/9999.html", timeout=10)
        page = err.value.read().decode()
        assert err.value.code == 404 and "Page not found" in page
        # a missing page two folders deep: its links and styles still resolve from the site's root
        assert f'href="/{MODEL}/classes/0000.html"' in page and 'href="/static/' in page, page[:2000]
        assert not re.search(r'\s(?:href|src)="(?!/|#|[a-z]+:)', page)
    finally:
        server.shutdown()
        server.server_close()
    with pytest.raises(AtlasError, match="no built site"):
        make_server(site.parent / "elsewhere", 0)


def test_serve_lets_a_client_hang_up_without_a_traceback(site, capsys):
    server = make_server(site, 0)
    try:
        for error in (BrokenPipeError(32, "Broken pipe"), ConnectionResetError(104, "reset by peer")):
            try:
                raise error
            except OSError:
                server.handle_error(None, ("127.0.0.1", 1))
        assert capsys.readouterr().err == ""
        try:
            raise ValueError("a real fault of the server")
        except ValueError:
            server.handle_error(None, ("127.0.0.1", 1))
        assert "a real fault of the server" in capsys.readouterr().err
    finally:
        server.server_close()


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
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "serving" in done.stdout and "http://127.0.0.1:" in done.stdout and ":0/" not in done.stdout


def test_cli_serve_warns_about_an_unfinished_build(site, tmp_path, monkeypatch, capsys):
    import atlas.site.serve as serve_module

    unfinished = _copy(site, tmp_path / "site")
    marker = json.loads((unfinished / ".atlas-site.json").read_text(encoding="utf-8"))
    (unfinished / ".atlas-site.json").write_text(json.dumps(dict(marker, complete=False)), encoding="utf-8")
    real = serve_module.make_server

    def stops_soon(*args, **kwargs):
        server = real(*args, **kwargs)
        threading.Timer(0.3, server.shutdown).start()
        return server

    monkeypatch.setattr(serve_module, "make_server", stops_soon)
    assert main(["serve", "--out", str(unfinished), "--port", "0"]) == 0
    err = capsys.readouterr().err
    assert "warning: the build of" in err and "did not finish" in err
    assert main(["serve", "--out", str(site), "--port", "0"]) == 0
    assert capsys.readouterr().err == ""


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
