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
from atlas.site.check import DEFAULT_BUDGET, Budget, inspect_site
from atlas.site.publish import publish
from atlas.site.serve import make_server, rooted
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


# A relative href or src: what a 404 page answering at any depth must not hold.
RELATIVE_LINK = re.compile(r'\s(?:href|src)="(?!/|#|[a-z]+:)')


def on_github(monkeypatch, tmp_path: Path, url: str) -> Path:
    """A local bare repository that git reaches for the GitHub address `url` (url.<base>.insteadOf)."""
    bare = tmp_path / "github.git"
    git("init", "--quiet", "--bare", str(bare))
    monkeypatch.setenv("GIT_CONFIG_COUNT", "1")
    monkeypatch.setenv("GIT_CONFIG_KEY_0", f"url.{bare}.insteadOf")
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", url)
    return bare


def published_404(remote: Path, branch: str = "gh-pages") -> bytes:
    return subprocess.run(["git", "--git-dir", str(remote), "show", f"{branch}:404.html"],
                          check=True, capture_output=True).stdout


@pytest.mark.parametrize("url", ["https://github.com/owner/atlas-demo.git", "git@github.com:owner/atlas-demo.git",
                                 "ssh://git@github.com/owner/atlas-demo", "https://GitHub.com/owner/atlas-demo/"])
def test_publish_roots_the_404_page_at_a_project_sites_path(site, tmp_path, project, monkeypatch, url):
    """GitHub Pages answers /atlas-demo/a/b/missing.html with 404.html as it is: its links must not
    depend on that depth. The site folder itself stays as built, relocatable."""
    work, _ = project
    remote = on_github(monkeypatch, tmp_path, url)
    before = (site / "404.html").read_bytes()
    done = publish(site, url, project=work)
    assert done.base_path == "/atlas-demo/"
    page = published_404(remote)
    assert page == rooted(before, "/atlas-demo/") != before
    text = page.decode()
    assert 'href="/atlas-demo/static/atlas.css"' in text and 'src="/atlas-demo/static/atlas.js"' in text
    assert f'href="/atlas-demo/{MODEL}/classes/0000.html"' in text and 'data-root="/atlas-demo/"' in text
    assert not RELATIVE_LINK.search(text)
    assert (site / "404.html").read_bytes() == before and inspect_site(site).problems == []
    index = git("--git-dir", str(remote), "show", "gh-pages:index.html")
    assert index == (site / "index.html").read_text(encoding="utf-8").rstrip("\n")  # only 404.html differs


@pytest.mark.parametrize("where", ["OWNER.github.io", "CNAME"])
def test_publish_roots_the_404_page_at_the_top_of_a_user_site_or_custom_domain(site, tmp_path, project,
                                                                                monkeypatch, where):
    work, _ = project
    if where == "CNAME":  # a custom domain serves even a project repository at its top
        site = _copy(site, tmp_path / "site")
        (site / "CNAME").write_text("atlas.example.org\n", encoding="utf-8")
        url = "https://github.com/owner/atlas-demo.git"
    else:
        url = "https://github.com/Owner/owner.GitHub.io.git"
    remote = on_github(monkeypatch, tmp_path, url)
    before = (site / "404.html").read_bytes()
    assert publish(site, url, project=work).base_path == "/"
    assert published_404(remote) == rooted(before, "/")
    assert f'href="/{MODEL}/classes/0000.html"' in published_404(remote).decode()
    assert (site / "404.html").read_bytes() == before


def test_the_base_path_flag_wins_over_the_remote(site, tmp_path, project, monkeypatch, capsys):
    work, _ = project
    url = "https://github.com/owner/atlas-demo.git"
    remote = on_github(monkeypatch, tmp_path, url)
    assert main(["publish", "--out", str(site), "--remote", url, "--base-path", "/docs/atlas/"]) == 0
    assert "404.html links rooted at /docs/atlas/" in capsys.readouterr().out
    assert 'href="/docs/atlas/static/atlas.css"' in published_404(remote).decode()
    elsewhere = tmp_path / "elsewhere.git"  # not on GitHub: only the flag tells the address
    git("init", "--quiet", "--bare", str(elsewhere))
    assert publish(site, str(elsewhere), project=work, base_path="/").base_path == "/"
    assert published_404(elsewhere) == rooted((site / "404.html").read_bytes(), "/")


def test_publish_off_github_pushes_the_404_page_as_built_and_says_so(site, tmp_path, capsys):
    remote = tmp_path / "pages.git"
    git("init", "--quiet", "--bare", str(remote))
    assert main(["publish", "--out", str(site), "--remote", str(remote)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert published_404(remote) == (site / "404.html").read_bytes()
    said = [line for line in out if "404.html" in line]
    assert len(said) == 1 and "not on GitHub" in said[0] and "--base-path" in said[0], out


@pytest.mark.parametrize("bad", ["docs/", "/docs", "", "/a//b/", "/../", "/a b/", "/caf\u00e9/", "/a?b/",
                                 "https://owner.github.io/repo/"])
def test_a_bad_base_path_is_a_one_line_error_and_pushes_nothing(site, tmp_path, project, bad, capsys):
    work, _ = project
    remote = tmp_path / "pages.git"
    git("init", "--quiet", "--bare", str(remote))
    with pytest.raises(AtlasError, match="--base-path .* starting and ending with '/'") as err:
        publish(site, str(remote), project=work, base_path=bad)
    assert "\n" not in str(err.value)
    assert main(["publish", "--out", str(site), "--remote", str(remote), "--base-path", bad]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "/REPO/" in lines[0], lines
    assert git("--git-dir", str(remote), "for-each-ref") == ""


def _missing_page(browser, base: str, body: bytes):  # noqa: ANN001, ANN202 - Playwright objects
    """A tab on a missing page two folders below `base`, answered with `body` as GitHub Pages would."""
    from tests.browser_support import open_tab

    tab = open_tab(browser, base)
    tab.page.route("**/classes/9999.html",
                   lambda route: route.fulfill(status=404, body=body, content_type="text/html"))
    tab.goto(f"{MODEL}/classes/9999.html")
    return tab


@pytest.mark.browser
def test_the_published_404_page_is_styled_two_folders_down_a_project_site(site, tmp_path, project, monkeypatch,
                                                                         browser):
    """The published tree served under /atlas-demo/, a missing page two folders down answered with the
    published 404.html as it is, as GitHub Pages does: its styles, scripts and search all resolve."""
    from tests.browser_support import serve_parent

    work, _ = project
    url = "https://github.com/owner/atlas-demo.git"
    remote = on_github(monkeypatch, tmp_path, url)
    publish(site, url, project=work)
    tree = tmp_path / "pages" / "atlas-demo"
    tree.mkdir(parents=True)
    archive = subprocess.run(["git", "--git-dir", str(remote), "archive", "gh-pages"], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    position = "getComputedStyle(document.querySelector('.skip')).position"  # absolute in atlas.css
    with serve_parent(tree) as base:
        as_built = _missing_page(browser, base, (site / "404.html").read_bytes())
        assert as_built.page.evaluate(position) == "static"  # unstyled there: the reason for all this
        as_built.page.context.close()
        tab = _missing_page(browser, base, (tree / "404.html").read_bytes())
        page = tab.page
        assert page.evaluate(position) == "absolute" and tab.failed == {}
        assert len(tab.errors) == 1 and "404" in tab.errors[0], tab.errors  # the missing page itself, nothing else
        tab.errors.clear()
        page.keyboard.press("/")
        page.keyboard.type("tench")
        page.keyboard.press("Enter")
        page.wait_for_url(base + f"{MODEL}/classes/0000.html")
        tab.assert_clean()
        page.context.close()


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
        assert 'data-root="/"' in page  # the search's links too
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


@pytest.mark.parametrize(("base_path", "prefix"), [("/atlas-demo", "/atlas-demo/"), ("", "/")])
def test_pages_workflow_roots_the_404_page_of_the_site_it_builds(site, tmp_path, base_path, prefix):
    """The workflow's step runs as written, with configure-pages' base_path ("/REPO", or "" at a host's top)."""
    workflow = yaml.safe_load((REPO / ".github/workflows/pages.yml").read_text(encoding="utf-8"))
    step = next(s for s in workflow["jobs"]["build"]["steps"] if "404" in s.get("name", ""))
    assert step["if"] == "steps.cache.outputs.found == 'true'"  # a published gh-pages branch is rooted already
    built = tmp_path / "_site"
    shutil.copytree(site, built)
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "BASE_PATH": base_path, "PYTHONPATH": str(REPO)}
    subprocess.run(["bash", "-c", step["run"]], cwd=tmp_path, env=env, check=True)
    assert (built / "404.html").read_bytes() == rooted((site / "404.html").read_bytes(), prefix)
    assert f'href="{prefix}static/'.encode() in (built / "404.html").read_bytes()
